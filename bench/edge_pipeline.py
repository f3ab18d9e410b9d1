"""Edge benchmark: sustained MQTT-publish -> Kafka-ack rate through the durable buffer, via
Mosquitto and via the embedded broker (plaintext and TLS, to measure what TLS costs), against
a naive pipe without durability (`mosquitto_sub | kcat -P`) on the same input;
publish-to-Kafka latency; gateway memory with 5,000 simulated devices at 1 Hz.

The rate runs go in rounds (`--repeat`, default 3): each round runs the naive pipe and every
gateway path once, in turn, and the figures are min / median / max over the rounds, with each
gateway's share of the naive pipe taken within its round. `--profile DIR` records the first
round's gateway runs with py-spy and prints where their time goes.

Its gateways produce to the bench's own topics (`bench.isolation`), never to the demo's.

Run with `make bench` (starts Kafka and Mosquitto). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer

from bench.isolation import TOPICS, isolate_children
from bench.results import Figure, record
from protocol import decode_telemetry_value
from tests.support.gateway import GatewayProcess
from tests.support.kafka import ensure_topics, partitions_of
from tests.support.process import ROOT, free_port
from tests.support.services import kafka_bootstrap, mosquitto_address
from tests.support.waiting import wait_until

DEVICES = 5


def log(msg: str) -> None:
    print(msg, flush=True)


class _Group:
    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs

    def wait(self, timeout: float | None = None) -> int:
        return max(p.wait(timeout) for p in self.procs)


def make_input(workdir: Path, per_device: int) -> list[Path]:
    """One file of JSON lines per device: the same bytes feed every pipeline."""
    now = int(time.time() * 1000)
    files = []
    for d in range(DEVICES):
        path = workdir / f"dev-{d}.jsonl"
        with path.open("w") as f:
            for seq in range(per_device):
                f.write(
                    json.dumps(
                        {
                            "ts": now,
                            "seq": seq,
                            "type": "bench",
                            "metrics": {
                                "temp_c": 20 + seq % 50 * 0.1,
                                "pressure_bar": 6.5,
                                "current_a": 12.25,
                                "speed_rpm": 1500.0,
                                "running": True,
                            },
                        },
                        separators=(",", ":"),
                    )
                    + "\n"
                )
        files.append(path)
    return files


def publish_files(
    host: str, port: int, site: str, files: list[Path], tls: list[str] | None = None
) -> _Group:
    """mosquitto_pub -l: a C publisher per device, QoS 1, as fast as the broker takes it;
    `tls`: mosquitto_pub's TLS options (--cafile ...)."""
    procs = [
        subprocess.Popen(
            [
                "mosquitto_pub",
                *(tls or []),
                "-h",
                host,
                "-p",
                str(port),
                "-q",
                "1",
                "-l",
                "-i",
                f"bench-pub-{site}-{i}",
                "-t",
                f"plant/{site}/dev-{i}/telemetry",
            ],
            stdin=path.open("rb"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i, path in enumerate(files)
    ]
    return _Group(procs)


async def topic_end(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await partitions_of(bootstrap, topic))
        return sum(ends.values())
    finally:
        await consumer.stop()


def wait_for_count(bootstrap: str, topic: str, start: int, n: int, timeout: float) -> float:
    """Poll the topic's end offsets until n more records are there; returns the time seen."""
    wait_until(
        lambda: asyncio.run(topic_end(bootstrap, topic)) - start >= n,
        timeout,
        f"{n} records on {topic}",
        interval=0.1,
    )
    return time.monotonic()


def run_naive(bootstrap: str, host: str, port: int, files: list[Path], n: int) -> float:
    topic = f"bench.naive.{uuid.uuid4().hex[:6]}"
    asyncio.run(ensure_topics(bootstrap, [topic]))
    site, client_id = "naive", f"bench-naive-{topic}"
    sub_args = [
        "-h",
        host,
        "-p",
        str(port),
        "-q",
        "1",
        "-i",
        client_id,
        "-t",
        f"plant/{site}/+/telemetry",
    ]
    # Subscribe once with a persistent session and exit (-E): from then on Mosquitto queues for
    # it, so the pipe below misses nothing however long it takes to start.
    subprocess.run(["mosquitto_sub", "-c", "-E", *sub_args], check=True, timeout=30)
    # kcat reads stdin in large blocks and flushes at EOF: mosquitto_sub -C n ends the stream.
    pipe = subprocess.Popen(
        f"mosquitto_sub -c -C {n} {' '.join(sub_args)} | kcat -P -b {bootstrap} -t {topic} "
        "-X linger.ms=5 -X compression.codec=lz4 -X acks=all -X enable.idempotence=true",
        shell=True,
        start_new_session=True,
    )
    try:
        t0 = time.monotonic()
        pubs = publish_files(host, port, site, files)
        done = wait_for_count(bootstrap, topic, 0, n, 300)
        pubs.wait(60)
        pipe.wait(30)
    finally:
        if pipe.poll() is None:
            os.killpg(pipe.pid, signal.SIGTERM)
            pipe.wait(10)
        subprocess.run(["mosquitto_sub", "-E", *sub_args], check=False, timeout=30)
    return n / (done - t0)


def run_gateway(
    bootstrap: str,
    files: list[Path],
    n: int,
    *,
    external: tuple[str, int] | None,
    workdir: Path,
    tls: bool = False,
    kafka_env: dict[str, str] | None = None,
    profile: Path | None = None,
) -> tuple[float, int, float]:
    """Returns readings/s, the gateway's RSS, and its CPU seconds per 1,000 readings (user and
    system, start-up included: a figure a loaded machine disturbs less than the rate).
    `kafka_env`: the gateway's own Kafka settings (a secure listener of the broker that
    `bootstrap` reaches in plaintext, where the records are counted)."""
    site = f"bench-{uuid.uuid4().hex[:6]}"
    mqtt_port = free_port()
    env = {
        "EDGE_GATEWAY_ID": site,
        "EDGE_SITE": site,
        "EDGE_KAFKA_BOOTSTRAP": bootstrap,
        "EDGE_LOG_LEVEL": "WARNING",
        **(kafka_env or {}),
    }
    tls_args: list[str] = []
    if external:
        env["EDGE_MQTT_URL"] = f"mqtt://{external[0]}:{external[1]}"
    else:
        env["EDGE_MQTT_PORT"] = str(mqtt_port)
        env["EDGE_MQTT_ALLOW_ANONYMOUS"] = "true"  # mosquitto_pub publishes without a login
    if tls:
        from tests.support.certs import CertAuthority

        ca = CertAuthority(workdir / f"{site}-pki")
        server = ca.issue("gateway")
        tls_port = free_port()
        env |= {
            "EDGE_MQTT_TLS_PORT": str(tls_port),
            "EDGE_MQTT_TLS_CERTFILE": str(server.cert),
            "EDGE_MQTT_TLS_KEYFILE": str(server.key),
        }
        tls_args = ["--cafile", str(ca.cert)]
    gw = GatewayProcess(workdir / site, env).start()
    host, port = external or ("127.0.0.1", int(env.get("EDGE_MQTT_TLS_PORT", mqtt_port)))
    assert gw.proc is not None
    spy: Profiler | None = None
    try:  # whatever fails from here, the gateway is stopped
        spy = Profiler(gw.proc.pid, profile) if profile else None
        t0 = time.monotonic()
        pubs = publish_files(host, port, site, files, tls_args)
        # The gateway's own count of readings Kafka acknowledged: with version 2 values (the
        # default) several readings share a Kafka record, so records are not readings.
        wait_until(
            lambda: gw.status()["counters"]["forwarded_total"] >= n,
            600,
            f"{n} readings acknowledged by Kafka",
            interval=0.1,
        )
        done = time.monotonic()
        pubs.wait(60)
        proc = psutil.Process(gw.proc.pid)
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
    finally:
        if spy is not None:
            spy.stop()
        gw.terminate()
    return n / (done - t0), rss, (cpu.user + cpu.system) / n * 1000


class Profiler:
    """py-spy sampling a running gateway (all threads, native frames left out) into `path`, in
    its raw format (one collapsed stack per line with its sample count)."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        self._proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
             "--rate", "200", "--format", "raw", "--output", str(path), "--nonblocking",
             "--threads"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = self._proc.communicate(timeout=60)
        if not self.path.exists():
            log(f"  py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def top_frames(path: Path, count: int = 15) -> list[str]:
    """The frames with the most samples of their own (self time), as shares of all samples."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        total += int(samples)
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(samples)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:count]
    return [f"  {n / total:6.1%}  {frame}" for frame, n in ranked]


def external_gateway(
    workdir: Path, site: str, bootstrap: str, host: str, port: int
) -> GatewayProcess:
    """A started gateway on the external broker, logging only warnings."""
    env = {
        "EDGE_GATEWAY_ID": site,
        "EDGE_KAFKA_BOOTSTRAP": bootstrap,
        "EDGE_MQTT_URL": f"mqtt://{host}:{port}",
        "EDGE_LOG_LEVEL": "WARNING",
    }
    return GatewayProcess(workdir / site, env).start()


async def latency(
    bootstrap: str, host: str, port: int, workdir: Path, rate: float, seconds: float
) -> list[float]:
    """Publish at a steady rate with the send time inside; measure when each shows up in Kafka."""
    from tests.support.mqtt import Publisher

    site = f"lat-{uuid.uuid4().hex[:6]}"
    gw = await asyncio.to_thread(external_gateway, workdir, site, bootstrap, host, port)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=5)
    await consumer.start()
    parts = await partitions_of(bootstrap, TOPICS.telemetry)
    consumer.assign(parts)
    for tp, off in (await consumer.end_offsets(parts)).items():
        consumer.seek(tp, off)
    pub = Publisher(host, port)
    pub.wait_connected()
    total = int(rate * seconds)
    sent = {}
    latencies: list[float] = []

    def produce() -> None:
        start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[i] = time.monotonic()
            pub.publish(
                f"plant/{site}/dev-{i % DEVICES}/telemetry",
                {"seq": i // DEVICES, "metrics": {"i": float(i)}},
            )

    producer = asyncio.get_running_loop().run_in_executor(None, produce)
    deadline = time.monotonic() + seconds + 60
    while len(latencies) < total and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.monotonic()
        for batch in batches.values():
            for r in batch:
                for reading in decode_telemetry_value(r.value):
                    if reading.site == site:
                        latencies.append((now - sent[int(reading.metrics["i"])]) * 1000)
    await producer
    pub.close()
    await consumer.stop()
    await asyncio.to_thread(gw.terminate)
    return latencies


def fleet_memory(
    bootstrap: str, host: str, port: int, workdir: Path, devices: int, seconds: float
) -> dict[str, float]:
    site = f"fleet-{uuid.uuid4().hex[:6]}"
    gw = external_gateway(workdir, site, bootstrap, host, port)
    per_type = devices // 5
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_gateway.cli",
            "simulate",
            "--mqtt-url",
            f"mqtt://{host}:{port}",
            "--site",
            site,
            "--count-per-type",
            str(per_type),
            "--rate",
            "1",
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert gw.proc is not None
    proc = psutil.Process(gw.proc.pid)
    proc.cpu_percent()
    peak = 0
    t0 = time.monotonic()
    received0 = gw.status()["counters"]["received_total"]
    while time.monotonic() - t0 < seconds:
        time.sleep(1)  # bench sampling interval
        peak = max(peak, proc.memory_info().rss)
        log(
            f"  fleet: t={time.monotonic() - t0:4.0f}s "
            f"rss={proc.memory_info().rss / 2**20:6.1f} MiB "
            f"received={gw.status()['counters']['received_total']:,}"
        )
    status = gw.status()
    cpu = proc.cpu_percent()
    rate = (status["counters"]["received_total"] - received0) / (time.monotonic() - t0)
    sim.send_signal(signal.SIGTERM)
    sim.wait(60)
    gw.terminate()
    return {
        "peak_rss_mib": peak / 2**20,
        "cpu_pct": cpu,
        "received_per_s": rate,
        "buffer_depth_end": status["buffer"]["depth"],
    }


def kafka_security_cost(files: list[Path], n: int, workdir: Path) -> list[str]:
    """The gateway (embedded broker) into one broker of its own, in plaintext and then over
    SASL_SSL (SCRAM-SHA-512), in the same run: what securing the Kafka link costs."""
    from tests.support.secure_kafka import USER, secure_kafka

    log("Kafka link: a broker with PLAINTEXT and SASL_SSL listeners (tests/support) ...")
    with secure_kafka(workdir / "secure-kafka") as broker:
        asyncio.run(ensure_topics(broker.plaintext, TOPICS.all()))
        sasl = {
            "EDGE_KAFKA_BOOTSTRAP": broker.sasl_ssl,
            "EDGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EDGE_KAFKA_SASL_USERNAME": USER,
            "EDGE_KAFKA_SASL_PASSWORD": broker.passwords[USER],
            "EDGE_KAFKA_SSL_CAFILE": str(broker.ca.cert),
        }
        rates = {}
        for name, kafka_env in (("PLAINTEXT", None), ("SASL_SSL", sasl)):
            log(f"gateway via embedded amqtt, Kafka {name} ...")
            rates[name], _, _ = run_gateway(
                broker.plaintext, files, n, external=None, workdir=workdir, kafka_env=kafka_env
            )
            log(f"  {rates[name]:,.0f} readings/s")
    ratio = rates["SASL_SSL"] / rates["PLAINTEXT"]
    record(Figure("edge_pipeline", "gateway, Kafka SASL_SSL", rates["SASL_SSL"], "readings/s",
                  ratio, "Kafka PLAINTEXT"))  # fmt: skip
    return [
        f"gateway, Kafka PLAINTEXT      {rates['PLAINTEXT']:10,.0f} readings/s (same broker)",
        f"gateway, Kafka SASL_SSL       {rates['SASL_SSL']:10,.0f} readings/s   "
        f"{ratio:6.1%} of plaintext",
    ]


RATE_RUNS: tuple[tuple[str, bool, bool], ...] = (
    # name, through Mosquitto (else the embedded broker), MQTT over TLS
    ("mosquitto", True, False),
    ("embedded", False, False),
    ("embedded-tls", False, True),
)


def spread(values: list[float]) -> str:
    """min / median / max: a figure on this machine varies from run to run."""
    return f"{min(values):8,.0f} {statistics.median(values):8,.0f} {max(values):8,.0f}"


def rate_runs(
    bootstrap: str,
    mosquitto: tuple[str, int],
    files: list[Path],
    n: int,
    workdir: Path,
    parts: set[str],
    repeat: int,
    profile_dir: Path | None = None,
) -> list[str]:
    """Each round runs the naive pipe and every gateway path once, in turn, so that a slower
    spell of the machine weighs on all of them; a gateway's share of the naive pipe is taken
    per round, against the naive run of the same round."""
    rates: dict[str, list[float]] = {}
    shares: dict[str, list[float]] = {}
    for round_no in range(1, repeat + 1):
        naive = 0.0
        if "naive" in parts:
            log(f"[{round_no}/{repeat}] naive pipe (mosquitto_sub | kcat -P) via Mosquitto ...")
            naive = run_naive(bootstrap, *mosquitto, files, n)
            rates.setdefault("naive", []).append(naive)
            log(f"  {naive:,.0f} readings/s")
        for name, external, tls in RATE_RUNS:
            if name not in parts:
                continue
            log(f"[{round_no}/{repeat}] gateway {name} ...")
            # The first round is profiled, if asked: py-spy's sampling costs a few percent.
            profile = profile_dir / f"{name}.txt" if profile_dir and round_no == 1 else None
            rate, rss, cpu = run_gateway(
                bootstrap, files, n, external=mosquitto if external else None,
                workdir=workdir, tls=tls, profile=profile,
            )  # fmt: skip
            if profile is not None and profile.exists():
                log(f"  profile {profile} (self time, top frames):")
                for row in top_frames(profile):
                    log(row)
            rates.setdefault(name, []).append(rate)
            if naive:
                shares.setdefault(name, []).append(rate / naive)
            log(
                f"  {rate:,.0f} readings/s, gateway RSS {rss / 2**20:.0f} MiB, "
                f"CPU {cpu * 1000:.0f} ms per 1,000 readings"
            )
    rows = [f"readings/s over {repeat} rounds:     min   median      max   share of naive"]
    labels = {
        "naive": "naive pipe (reference)",
        "mosquitto": "gateway via Mosquitto",
        "embedded": "gateway via embedded amqtt",
        "embedded-tls": "gateway via embedded amqtt TLS",
    }
    for name, values in rates.items():
        share = ""
        if name in shares:
            s = shares[name]
            share = f"   {min(s):.1%} / {statistics.median(s):.1%} / {max(s):.1%}"
        rows.append(f"{labels[name]:<31}{spread(values)}{share}")
        record(
            Figure(
                "edge_pipeline",
                f"{labels[name]}, median of {repeat}",
                statistics.median(values),
                "readings/s",
                statistics.median(shares[name]) if name in shares else None,
                "naive pipe" if name in shares else None,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--per-device",
        type=int,
        default=20_000,
        help="messages per device for the rate runs (5 devices)",
    )
    parser.add_argument("--fleet", type=int, default=5000, help="devices for the memory run")
    parser.add_argument("--fleet-seconds", type=float, default=45)
    parser.add_argument("--latency-rate", type=float, default=1000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the rate runs (each round runs every path once, in turn)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the first round's gateway runs with py-spy into DIR and print the top frames",
    )
    parser.add_argument(
        "--only",
        default="naive,mosquitto,embedded,embedded-tls,kafka-sasl-ssl,latency,fleet",
        help="comma list of parts to run",
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    for tool in ("mosquitto_pub", "mosquitto_sub", "kcat"):
        if not shutil.which(tool):
            print(
                f"{tool} not found: run `scripts/services start kafka mosquitto`", file=sys.stderr
            )
            return 1
    bootstrap = kafka_bootstrap()
    host, port = mosquitto_address()
    isolate_children()  # every gateway of this run uses TOPICS, not the demo's topics
    asyncio.run(ensure_topics(bootstrap, TOPICS.all()))
    n = args.per_device * DEVICES
    parts = set(args.only.split(","))
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        workdir = Path(tmp)
        files = make_input(workdir, args.per_device)
        size = sum(f.stat().st_size for f in files) / n
        log(f"input: {n:,} readings, 5 metrics each, {size:.0f} B per payload, QoS 1")
        rows += rate_runs(
            bootstrap, (host, port), files, n, workdir, parts, args.repeat, args.profile
        )
        if "kafka-sasl-ssl" in parts:
            rows += kafka_security_cost(files, n, workdir)
        if "latency" in parts:
            log(f"latency at {args.latency_rate:.0f} readings/s via Mosquitto ...")
            lat = asyncio.run(latency(bootstrap, host, port, workdir, args.latency_rate, 20))
            q = statistics.quantiles(lat, n=100)
            record(Figure("edge_pipeline", "latency publish -> Kafka, p99", q[98], "ms"))
            rows.append(
                f"latency publish -> in Kafka   p50 {q[49]:.1f} ms   p99 {q[98]:.1f} ms"
                f"   ({len(lat):,} readings at {args.latency_rate:.0f}/s)"
            )
        if "fleet" in parts:
            log(f"fleet: {args.fleet:,} simulated devices at 1 Hz via Mosquitto ...")
            fleet = fleet_memory(bootstrap, host, port, workdir, args.fleet, args.fleet_seconds)
            record(
                Figure("edge_pipeline", f"{args.fleet:,} devices, gateway peak RSS",
                       fleet["peak_rss_mib"], "MiB")
            )  # fmt: skip
            rows.append(
                f"{args.fleet:,} devices at 1 Hz      gateway peak RSS "
                f"{fleet['peak_rss_mib']:.0f} MiB, CPU {fleet['cpu_pct']:.0f}%, "
                f"{fleet['received_per_s']:,.0f} readings/s received"
            )
    log("")
    log("== edge pipeline benchmark ==")
    for row in rows:
        log(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
