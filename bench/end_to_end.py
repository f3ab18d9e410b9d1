"""End-to-end benchmark: devices publish over MQTT (one `mosquitto_pub` process each, QoS 1, as
fast as the gateway acknowledges) -> gateway (embedded broker, or Mosquitto) -> Kafka -> hub
worker(s) -> rows committed in PostgreSQL. Prints metric values (rows) committed per second,
sustained, and the CPU each part of the system used, as a share of the machine.

It stays out of what `make demo` shows (bench/isolation.py): the bench's topic prefix, a
database of this run only (dropped at the end) and a redis-server of its own; its consumer group
starts at the end of the topics, so nothing older is read.

Run with `make bench` or `python -m bench.end_to_end --help`. Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from bench.hub_ingest import create_database, drop_database
from bench.isolation import HUB_DLQ, TOPICS, isolate_children, own_redis
from bench.results import Figure, record
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, end_offsets, position_group
from tests.support.kafka import ensure_topics
from tests.support.process import free_port
from tests.support.services import kafka_bootstrap, mosquitto_address, run_services
from tests.support.waiting import wait_until

POLL_S = 1.0


def log(msg: str) -> None:
    print(msg, flush=True)


def make_device_files(workdir: Path, devices: int, per_device: int, metrics: int) -> list[Path]:
    now = int(time.time() * 1000)
    files = []
    for d in range(devices):
        path = workdir / f"dev-{d}.jsonl"
        with path.open("w") as f:
            for seq in range(per_device):
                values = {f"m{k:02d}": round(20 + (seq + k) % 50 * 0.1, 2) for k in range(metrics)}
                body = {"ts": now - (per_device - seq) * 10, "seq": seq, "type": "bench_rig"}
                f.write(json.dumps({**body, "metrics": values}, separators=(",", ":")) + "\n")
        files.append(path)
    return files


def publisher(host: str, port: int, site: str, i: int, path: Path) -> subprocess.Popen[bytes]:
    command = ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-l"]
    command += ["-i", f"e2e-{site}-{i}", "-t", f"plant/{site}/dev-{i}/telemetry"]
    return subprocess.Popen(
        command, stdin=path.open("rb"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@dataclass
class CpuMeter:
    """CPU seconds (user + system) per part of the system, between start() and the last sample."""

    parts: dict[str, list[psutil.Process]] = field(default_factory=dict)
    _before: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)

    def add(self, part: str, pids: list[int]) -> None:
        """Processes added after start() count from 0: all their CPU is in the window."""
        self.parts.setdefault(part, []).extend(psutil.Process(pid) for pid in pids)

    @staticmethod
    def _cpu(proc: psutil.Process) -> float | None:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            return None
        return float(t.user + t.system)

    def start(self) -> None:
        for procs in self.parts.values():
            for p in procs:
                self._before[p.pid] = self._cpu(p) or 0.0

    def sample(self) -> None:
        """A process that ended keeps its last sample."""
        for procs in self.parts.values():
            for p in procs:
                now = self._cpu(p)
                if now is not None:
                    self._last[p.pid] = now - self._before.get(p.pid, 0.0)

    @property
    def used(self) -> dict[str, float]:
        return {
            part: sum(self._last.get(p.pid, 0.0) for p in procs)
            for part, procs in self.parts.items()
        }


def service_pids(redis_port: int) -> dict[str, list[int]]:
    """The services' processes (the bench's own redis-server, not the shared one)."""
    found: dict[str, list[int]] = {"kafka": [], "postgresql": [], "redis": [], "mosquitto": []}
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        name = p.info["name"] or ""
        if "kafka.Kafka" in cmd:
            found["kafka"].append(p.pid)
        elif name.startswith("postgres"):
            found["postgresql"].append(p.pid)
        elif name.startswith("redis-server") and f"--port {redis_port}" in cmd:
            found["redis"].append(p.pid)
        elif name == "mosquitto":
            found["mosquitto"].append(p.pid)
    return found


async def count_rows(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM readings")
    return n


async def run(args: argparse.Namespace, workdir: Path, dsn: str, redis_url: str) -> list[str]:
    kafka = kafka_bootstrap()
    await ensure_topics(kafka, [*TOPICS.all(), HUB_DLQ])
    site = f"e2e-{uuid.uuid4().hex[:6]}"
    total_rows = args.devices * args.per_device * args.metrics
    files = make_device_files(workdir, args.devices, args.per_device, args.metrics)
    mqtt_port = free_port()
    gw_env = {"EDGE_GATEWAY_ID": site, "EDGE_SITE": site, "EDGE_KAFKA_BOOTSTRAP": kafka,
              "EDGE_LOG_LEVEL": "WARNING"}  # fmt: skip
    if args.broker == "mosquitto":
        host, port = mosquitto_address()
        gw_env["EDGE_MQTT_URL"] = f"mqtt://{host}:{port}"
    else:
        host, port = "127.0.0.1", mqtt_port
        gw_env |= {"EDGE_MQTT_PORT": str(port), "EDGE_MQTT_ALLOW_ANONYMOUS": "true"}
    start = await end_offsets(kafka, TOPICS.telemetry)
    workers = []
    group = f"e2e-{uuid.uuid4().hex[:6]}"
    await position_group(kafka, group, start, TOPICS)
    for i in range(args.workers):
        # INFO: one line per batch at most, and `partitions_assigned` tells when it is in.
        env = {"HUB_INGEST_BATCH_MAX": "2000", "HUB_INGEST_BATCH_WAIT_S": "0.1",
               "HUB_LOG_LEVEL": "INFO"}  # fmt: skip
        workers.append(
            HubWorkerProcess(
                workdir, kafka, redis_url, database_url=dsn, group=group, name=f"w{i}", env=env
            ).start()
        )
    gw = GatewayProcess(workdir / "gw", gw_env).start()
    pubs: list[subprocess.Popen[bytes]] = []
    # Its backend is not among the measured ones: the bench's own polling is left out.
    poll = await asyncpg.connect(dsn)
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: all(w.assignments() and w.assignments()[-1] for w in workers),
            args.settle,
            "every worker assigned partitions of the group",
        )
        meter = CpuMeter()
        assert gw.proc is not None
        meter.add("gateway", [gw.proc.pid])
        meter.add("hub worker(s)", [w.proc.pid for w in workers if w.proc is not None])
        for part, pids in service_pids(int(redis_url.rsplit(":", 1)[1].split("/")[0])).items():
            if args.broker == "mosquitto" or part != "mosquitto":
                meter.add(part, pids)
        machine0 = psutil.cpu_times()
        t0 = time.monotonic()
        pubs = [publisher(host, port, site, i, path) for i, path in enumerate(files)]
        meter.start()
        meter.add("publishers", [p.pid for p in pubs])
        first: tuple[float, int] | None = None
        last_log = t0
        while (n := await count_rows(poll)) < total_rows:
            now = time.monotonic()
            meter.sample()
            if n and first is None:
                first = (now, n)
            if now - last_log >= 5:
                log(f"  t={now - t0:5.1f}s rows={n:,} ({n / total_rows:.0%})")
                last_log = now
            if now - t0 > args.timeout:
                raise TimeoutError(f"{n:,} of {total_rows:,} rows after {args.timeout} s")
            if not all(w.running() for w in workers):
                raise RuntimeError(f"a worker exited; see {workdir}")
            await asyncio.sleep(POLL_S)  # bench sampling interval
        done = time.monotonic()
        meter.sample()
        machine1 = psutil.cpu_times()
    finally:
        await poll.close()
        for p in pubs:
            p.kill()
        gw.terminate()
        for w in workers:
            w.cleanup()
    elapsed = done - t0
    record(Figure("end_to_end", f"MQTT -> rows in PostgreSQL, {args.workers} worker(s)",
                  total_rows / elapsed, "values/s"))  # fmt: skip
    busy = sum(machine1) - sum(machine0) - (machine1.idle - machine0.idle)
    rows = [
        f"{args.devices} devices x {args.per_device:,} readings x {args.metrics} metrics "
        f"= {total_rows:,} values, broker {args.broker}, {args.workers} worker(s)",
        f"metric values committed/s    {total_rows / elapsed:10,.0f}   (publish start -> last row)",
    ]
    if first is not None and done > first[0]:
        rows.append(
            f"  sustained, from first row   {(total_rows - first[1]) / (done - first[0]):10,.0f}"
        )
    rows.append(f"readings/s                   {total_rows / args.metrics / elapsed:10,.0f}")
    cores = psutil.cpu_count() or 1
    rows.append(f"CPU, share of {cores} cores over {elapsed:.1f} s:")
    for part, seconds in sorted(meter.used.items(), key=lambda kv: -kv[1]):
        rows.append(f"  {part:24} {seconds / elapsed / cores:6.1%}   ({seconds:.1f} CPU s)")
    rows.append(f"  {'whole machine':24} {busy / elapsed / cores:6.1%}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.end_to_end",
        description="MQTT publish -> gateway -> Kafka -> hub -> rows in PostgreSQL, sustained; "
        "prints values/s and the CPU split by process.",
    )
    parser.add_argument("--devices", type=int, default=10, help="publisher processes (default 10)")
    parser.add_argument("--per-device", type=int, default=4000, help="readings each (4000)")
    parser.add_argument("--metrics", type=int, default=20, help="metrics per reading (20)")
    parser.add_argument("--broker", choices=("embedded", "mosquitto"), default="embedded")
    parser.add_argument("--workers", type=int, default=1, help="hub worker processes (1)")
    parser.add_argument("--settle", type=float, default=120.0, help="wait for the group (s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    args = parser.parse_args()
    if not shutil.which("mosquitto_pub"):
        print("mosquitto_pub not found: run `scripts/services start`", file=sys.stderr)
        return 1
    run_services("start", "kafka", "postgres", "redis", "mosquitto")
    isolate_children()
    name = f"iot_bench_e2e_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp, own_redis() as redis_url:
        dsn = asyncio.run(create_database(name))
        try:
            rows = asyncio.run(run(args, Path(tmp), dsn, redis_url))
        finally:
            asyncio.run(drop_database(name))
    log("")
    log("== end-to-end benchmark ==")
    for row in rows:
        log(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
