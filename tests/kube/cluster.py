"""The single-node cluster of scripts/kube, driven from pytest: kubectl and helm as subprocesses
against its kubeconfig, PostgreSQL through `kubectl exec psql`, and a Kafka producer that runs
in a pod (Kafka's advertised listener is the in-cluster Service name, which only pods resolve)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from protocol import NormalisedReading
from protocol.codec import encode
from tests.deploy.tools import ROOT
from tests.support.readings import make_reading
from tests.support.waiting import wait_until

KUBE = ROOT / "scripts" / "kube"
# Where scripts/kube keeps the pid files of what it started (IOT_STATE_DIR, as scripts/lib).
KUBE_RUN = Path(os.environ.get("IOT_STATE_DIR") or ROOT / ".local").resolve() / "kube" / "run"
DEPS_NS = "iot-deps"
SVC = "svc.cluster.local"
KAFKA_BOOTSTRAP = f"kafka.{DEPS_NS}.{SVC}:9092"
DATABASE_URL = f"postgresql://iot:iot@postgres.{DEPS_NS}.{SVC}:5432/iot"
REDIS_URL = f"redis://redis.{DEPS_NS}.{SVC}:6379/0"
SCRIPT_TIMEOUT_S = 3600

Key = tuple[str, str, int]  # (device_id, metric, ts in ms): a row of `readings`


def run_kube_script(config: pytest.Config, *args: str) -> None:
    """scripts/kube ARGS with its progress on the terminal (a cold start builds for minutes)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[tests/kube] scripts/kube {' '.join(args)}", flush=True)
        result = subprocess.run([str(KUBE), *args], timeout=SCRIPT_TIMEOUT_S, check=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/kube {' '.join(args)} failed with exit code {result.returncode}")


def cluster_running() -> bool:
    return subprocess.run([str(KUBE), "status"], capture_output=True, timeout=60).returncode == 0


def cluster_pids() -> dict[str, int]:
    """The processes scripts/kube started: component -> pid."""
    return {f.stem: int(f.read_text().strip()) for f in KUBE_RUN.glob("*.pid")}


def kubeconfig() -> str:
    out = subprocess.run(
        [str(KUBE), "env"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    # export KUBECONFIG=/path (printf %q: no spaces in the repository's path here)
    return out.strip().partition("=")[2]


def kubectl(*args: str, input: str | None = None, timeout: float = 120) -> str:
    """kubectl ARGS against the cluster: its standard output (AssertionError if it fails)."""
    result = subprocess.run(
        [str(KUBE), "kubectl", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr[-3000:]}"
    return result.stdout


def logs(namespace: str, selector: str) -> str:
    """The logs of the selector's running containers; "" while none has started."""
    result = subprocess.run(
        [str(KUBE), "kubectl", "-n", namespace, "logs", "-l", selector, "--tail=-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout if result.returncode == 0 else ""


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def sql(query: str) -> list[list[str]]:
    """Rows of a query in the in-cluster PostgreSQL, through psql in its pod."""
    out = kubectl(
        "-n", DEPS_NS, "exec", "deploy/postgres", "--",
        "psql", "-U", "iot", "-d", "iot", "-AtF", "|", "-v", "ON_ERROR_STOP=1", "-c", query,
    )  # fmt: skip
    return [line.split("|") for line in out.splitlines() if line]


def deps_answer() -> bool:
    """PostgreSQL and Redis answer in their pods (after a restart of the cluster, the pods'
    Ready conditions are those of the last run for a while)."""
    checks = (
        ("deploy/postgres", "psql", "-U", "iot", "-d", "iot", "-Atc", "SELECT 1"),
        ("deploy/redis", "redis-cli", "ping"),
    )
    for target, *command in checks:
        result = subprocess.run(
            [str(KUBE), "kubectl", "-n", DEPS_NS, "exec", target, "--", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0 or result.stdout.strip() not in ("1", "PONG"):
            return False
    return True


def stored(device_prefix: str) -> list[Key]:
    """Every row of `readings` of the devices whose id starts with the prefix (with repeats, if
    any)."""
    rows = sql(
        "SELECT device_id, metric, (extract(epoch FROM ts) * 1000)::bigint FROM readings "
        f"WHERE device_id LIKE '{device_prefix}%'"
    )
    return [(d, m, int(ts)) for d, m, ts in rows]


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path
    kubeconfig: str

    def run(self, *args: str, timeout: float = 600) -> str:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "KUBECONFIG": self.kubeconfig,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        result = subprocess.run(
            [str(self.binary), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr[-3000:]}"
        return result.stdout


# Runs in a pod of the hub image (aiokafka and protocol are installed there): one JSON reading a
# line on stdin, produced to iot.telemetry keyed by device_id with acks=all; "ok" on stdout once
# Kafka has it. SIGTERM (the pod's deletion) ends the idle pod at once.
PRODUCER_SCRIPT = """
import asyncio, json, sys
from aiokafka import AIOKafkaProducer

async def main():
    for attempt in range(120):  # Kafka's pod may still be starting (a restarted cluster)
        producer = AIOKafkaProducer(bootstrap_servers=sys.argv[1], acks="all")
        try:
            await producer.start()
            break
        except Exception:
            await producer.stop()
            await asyncio.sleep(1)
    else:
        raise SystemExit("Kafka did not answer in 120 s")
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.buffer.readline):
            value = line.rstrip(b"\\n")
            key = json.loads(value)["device_id"].encode()
            await producer.send_and_wait("iot.telemetry", value, key=key)
            sys.stdout.write("ok\\n")
            sys.stdout.flush()
    finally:
        await producer.stop()

asyncio.run(main())
"""
IDLE = "import signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); signal.pause()"
PRODUCER_LABEL = "iot-test/role=producer"


class Producer:
    """`kubectl exec -i` into a pod of the hub image running PRODUCER_SCRIPT (PLAINTEXT, to the
    deps' Kafka unless told otherwise)."""

    def __init__(self, namespace: str, pod: str, bootstrap: str = KAFKA_BOOTSTRAP) -> None:
        self._proc = subprocess.Popen(
            [str(KUBE), "kubectl", "-n", namespace, "exec", "-i", pod, "--",
             "python", "-c", PRODUCER_SCRIPT, bootstrap],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )  # fmt: skip
        self._acks: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._acks.put(line.strip())
        self._acks.put("eof")

    def send(self, reading: NormalisedReading, timeout: float = 60) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(encode(reading).decode() + "\n")
        self._proc.stdin.flush()
        try:
            ack = self._acks.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"Kafka did not acknowledge a reading in {timeout} s") from None
        if ack != "ok":
            stderr = self._proc.stderr.read() if self._proc.stderr else ""
            raise AssertionError(f"the producer in the cluster ended: {ack}; {stderr[-3000:]}")

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=30)
        self._reader.join(timeout=10)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


def start_producer(namespace: str, bootstrap: str = KAFKA_BOOTSTRAP) -> Producer:
    """A pod `producer` of the hub image, idle until Producer execs into it (labelled, so that
    the tests that list what is left in the namespace can leave it out)."""
    kubectl(
        "-n", namespace, "run", "producer", "--image=iot-monitoring/hub:local",
        "--image-pull-policy=Never", "--restart=Never", f"--labels={PRODUCER_LABEL}",
        "--command", "--", "python", "-c", IDLE,
    )  # fmt: skip
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/producer", "--timeout=120s")
    return Producer(namespace, "producer", bootstrap)


@dataclass
class Readings:
    """Readings of a few devices of this test run, each with a newer ts than the last."""

    prefix: str
    devices: int = 3
    metric: str = "temperature_c"
    produced: list[Key] = field(default_factory=list)
    _last_ts: int = 0

    def next(self) -> NormalisedReading:
        n = len(self.produced)
        ts = max(self._last_ts + 1, time.time_ns() // 1_000_000)
        self._last_ts = ts
        device = f"{self.prefix}{n % self.devices}"
        return make_reading(device, ts, {self.metric: float(n)}, seq=n // self.devices)

    def produce(self, producer: Producer, count: int) -> None:
        for _ in range(count):
            reading = self.next()
            producer.send(reading)
            self.produced.append((reading.device_id, self.metric, reading.ts))


class Stream:
    """Readings produced from a thread, about `rate` a second, until stopped; what Kafka
    acknowledged is in `readings.produced`."""

    def __init__(self, producer: Producer, readings: Readings, rate: float = 40) -> None:
        self.producer = producer
        self.readings = readings
        self._interval = 1 / rate
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.readings.produce(self.producer, 1)
                self._stop.wait(self._interval)  # pacing, not synchronisation
        except (AssertionError, OSError) as exc:  # reported by wait_for_more() and stop()
            self._error = exc

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def count(self) -> int:
        return len(self.readings.produced)

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        """Until `count` more readings than now have been acknowledged."""
        target = self.count + count
        wait_until(lambda: self.count >= target or self._error, timeout, f"{count} more readings")
        self._raise()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise AssertionError(f"producing failed: {self._error}") from self._error


def wait_stored(
    readings: Readings, timeout: float = 180, context: Callable[[], str] = lambda: ""
) -> list[Key]:
    """Until PostgreSQL holds every produced reading; then its rows of these devices. A timeout
    names how many are missing, with `context()` (the worker's log, say)."""
    expected = set(readings.produced)

    def all_there() -> list[Key] | None:
        rows = stored(readings.prefix)
        return rows if set(rows) >= expected else None

    try:
        return wait_until(all_there, timeout, "every produced reading in PostgreSQL", 1.0)
    except TimeoutError as exc:
        missing = expected - set(stored(readings.prefix))
        raise AssertionError(
            f"{exc}: {len(missing)} of {len(expected)} missing\n{context()}"
        ) from None


class PodWatch:
    """`kubectl get pods --watch` in a namespace: one line per change, in the API server's order
    (name, phase, component label), collected by a thread."""

    def __init__(self, namespace: str) -> None:
        component = "{.metadata.labels.app\\.kubernetes\\.io/component}"
        template = f'{{.metadata.name}} {{.status.phase}} {component}{{"\\n"}}'
        self._proc = subprocess.Popen(
            [str(KUBE), "kubectl", "-n", namespace, "get", "pods", "--watch", "-o",
             f"jsonpath={template}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self.lines: list[tuple[str, ...]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(tuple(line.split()))

    def __enter__(self) -> PodWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=30)
        self._thread.join(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = kubectl_json("-n", namespace, "get", "pods", "-l", selector)[
        "items"
    ]
    return found


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def running_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods of the selector that are not being deleted."""
    return [p for p in pods(namespace, selector) if "deletionTimestamp" not in p["metadata"]]


def wait_rolled(namespace: str, selector: str, old_uids: Sequence[str], timeout: float) -> None:
    """Until every pod of the selector is new (none of `old_uids`, none terminating) and Ready."""

    def rolled() -> bool:
        current = pods(namespace, selector)
        return bool(current) and all(
            p["metadata"]["uid"] not in old_uids
            and "deletionTimestamp" not in p["metadata"]
            and ready(p)
            for p in current
        )

    wait_until(rolled, timeout, f"new, Ready pods of {selector}", 1.0)
    for pod in pods(namespace, selector):
        (status,) = pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0, (pod["metadata"]["name"], status)
