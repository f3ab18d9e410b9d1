"""Hub benchmark: `iot-hub worker` ingest rate from Kafka into PostgreSQL (committed rows per
second, end to end) against a raw COPY of the same rows into a table of the same shape; and
alert latency, a breaching reading produced to Kafka -> its alert row committed.

The readings are produced to the bench's own `bench.iot.telemetry` first (`bench.isolation`:
its own topics and Redis, so `make demo` sees none of it), under device ids of this run only, as
version 2 values of `--per-value` readings of one device each (what the edge forwarder sends by
default; `--per-value 1` sends version 1 values, one reading each); the workers' consumer group is
positioned at the offsets where they begin (a new group would read the topic's whole history), and
they write into a database of this run only, dropped at the end. `--workers 2` runs two worker
processes in one group, as two replicas would.

The rate is measured from the first committed row (steady state; start-up, joining the group
and the first batch are printed apart: they are a constant, not a rate).

Run with `make bench` (starts Kafka, PostgreSQL and Redis). Prints figures; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from bench.isolation import HUB_DLQ, TOPICS, isolate_children, own_redis
from bench.results import Figure, record
from hub.settings import HubSettings
from hub.storage.migrations import migrate
from protocol import NormalisedReading, encode, encode_telemetry_batch
from tests.support.hub import HubWorkerProcess, end_offsets, position_group, produce
from tests.support.kafka import ensure_topics
from tests.support.services import kafka_bootstrap, run_services

ADMIN_DSN = "postgresql://iot:iot@127.0.0.1:5432/iot"
DEVICES = 50


def log(msg: str) -> None:
    print(msg, flush=True)


def make_readings(tag: str, count: int, t0_ms: int) -> list[NormalisedReading]:
    """`count` readings of five metrics each over DEVICES spindles, 10 Hz per device, all values
    inside the default rules' normal ranges (and never flat)."""
    return [
        NormalisedReading(
            site=f"bench-{tag}",
            device_id=f"bench-{tag}-{i % DEVICES}",
            type="cnc_spindle",
            ts=t0_ms + (i // DEVICES) * 100,
            seq=i // DEVICES,
            metrics={
                "running": True,
                "spindle_speed_rpm": 12_000.0 + i % 97,
                "spindle_load_pct": 50.0 + i % 13 * 0.1,
                "spindle_temp_c": 60.0 + i % 7 * 0.01,
                "vibration_mm_s": 2.0 + i % 11 * 0.01,
            },
            gateway_id=f"bench-gw-{tag}",
            received_ts=t0_ms + (i // DEVICES) * 100 + 5,
        )
        for i in range(count)
    ]


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    await migrate(dsn)
    return dsn


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def count_rows(conn: asyncpg.Connection, prefix: str) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM readings WHERE device_id LIKE $1", f"{prefix}%"
    )
    return n


def kafka_values(readings: list[NormalisedReading], per_value: int) -> list[tuple[bytes, bytes]]:
    """(key, value) as the edge forwarder sends them: with `per_value` > 1, each device's
    readings in order, `per_value` to a version 2 value."""
    if per_value == 1:
        return [(r.device_id.encode(), encode(r)) for r in readings]
    by_device: dict[str, list[bytes]] = {}
    for r in readings:
        by_device.setdefault(r.device_id, []).append(encode(r))
    return [
        (device.encode(), encode_telemetry_batch(values[i : i + per_value]))
        for device, values in by_device.items()
        for i in range(0, len(values), per_value)
    ]


async def ingest(
    kafka: str,
    dsn: str,
    workdir: Path,
    readings: list[NormalisedReading],
    tag: str,
    redis_url: str,
    *,
    per_value: int,
    workers: int,
) -> tuple[list[HubWorkerProcess], float]:
    """Returns the workers (still running) and their steady rate in rows/s."""
    total = sum(len(r.metrics) for r in readings)
    start = await end_offsets(kafka, TOPICS.telemetry)
    t = time.monotonic()
    records = kafka_values(readings, per_value)
    await produce(kafka, records, TOPICS.telemetry)
    log(
        f"produced {len(readings):,} readings in {len(records):,} Kafka records "
        f"({per_value} per value) in {time.monotonic() - t:.1f} s"
    )
    group = f"hub-bench-{tag}"
    procs = [
        HubWorkerProcess(
            workdir,
            kafka,
            redis_url,
            database_url=dsn,
            group=group,
            name=f"worker-{n}",
            env={"HUB_INGEST_BATCH_MAX": "2000", "HUB_LOG_LEVEL": "WARNING"},
        )
        for n in range(workers)
    ]
    await position_group(kafka, group, start, TOPICS)
    t0 = time.monotonic()
    for proc in procs:
        proc.start()
    first, done = await wait_rows(dsn, f"bench-{tag}-", readings, procs)
    steady = (total - first.rows) / (done.at - first.at)
    cpu_s = done.cpu_s - first.cpu_s
    log(
        f"hub ingest, {workers} worker(s): {total:,} rows, {steady:,.0f} rows/s "
        f"({steady / 5:,.0f} readings/s) from the first committed row; "
        f"start-up, group join and first batch {first.at - t0:.1f} s; "
        f"{total / (done.at - t0):,.0f} rows/s counting those"
    )
    log(
        f"  worker CPU meanwhile: {cpu_s:.1f} s, {(total - first.rows) / cpu_s:,.0f} rows "
        f"({(total - first.rows) / 5 / cpu_s:,.0f} readings) per CPU second; "
        f"{cpu_s / (done.at - first.at):.2f} cores busy"
    )
    return procs, steady


@dataclass(frozen=True)
class Mark:
    at: float  # monotonic
    rows: int
    cpu_s: float  # user + system of every worker process so far


def mark(rows: int, procs: list[HubWorkerProcess]) -> Mark:
    cpu = 0.0
    for proc in procs:
        assert proc.proc is not None
        times = psutil.Process(proc.proc.pid).cpu_times()
        cpu += times.user + times.system
    return Mark(time.monotonic(), rows, cpu)


async def wait_rows(
    dsn: str, prefix: str, readings: list[NormalisedReading], procs: list[HubWorkerProcess]
) -> tuple[Mark, Mark]:
    """When rows first appeared, and when every reading was in. Watched cheaply, so the
    watching does not slow PostgreSQL down: a worker commits each device's readings in order,
    so all are in once the last reading of every device is (a few primary key lookups); the
    whole count is taken once, while the table is still small, and once at the end."""
    last = {r.device_id: r for r in readings}
    devices = list(last)
    stamps = [datetime.fromtimestamp(last[d].ts / 1000, UTC) for d in devices]
    metrics = [next(iter(last[d].metrics)) for d in devices]
    conn = await asyncpg.connect(dsn)
    try:
        first = None
        while True:
            for proc in procs:
                if not proc.running():
                    raise RuntimeError(f"worker exited; see {proc.log_path}")
            if first is None:
                if n := await count_rows(conn, prefix):
                    first = mark(n, procs)
            elif await conn.fetchval(_LAST_IN, devices, metrics, stamps) == len(devices):
                done = mark(sum(len(r.metrics) for r in readings), procs)
                break
            await asyncio.sleep(0.05)
        if (n := await count_rows(conn, prefix)) != done.rows:
            raise RuntimeError(f"{n:,} rows, expected {done.rows:,}")
    finally:
        await conn.close()
    return first, done


_LAST_IN = """
SELECT count(*) FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(device_id, metric, ts)
WHERE EXISTS (SELECT 1 FROM readings r
              WHERE r.device_id = u.device_id AND r.metric = u.metric AND r.ts = u.ts)
"""


async def reference_copy(dsn: str, readings: list[NormalisedReading]) -> float:
    """One COPY of the same rows into a plain table like `readings` (same columns, primary key
    and indexes; not partitioned)."""
    rows = [
        (r.device_id, metric, datetime.fromtimestamp(r.ts / 1000, UTC), float(value), r.seq)
        for r in readings
        for metric, value in r.metrics.items()
    ]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE bench_reference (LIKE readings INCLUDING ALL)")
        t = time.monotonic()
        await conn.copy_records_to_table(
            "bench_reference", records=rows, columns=("device_id", "metric", "ts", "value", "seq")
        )
        elapsed = time.monotonic() - t
    finally:
        await conn.close()
    rate = len(rows) / elapsed
    log(f"reference: one COPY of {len(rows):,} rows in {elapsed:.2f} s = {rate:,.0f} rows/s")
    return rate


async def alert_latency(kafka: str, dsn: str, tag: str, samples: int) -> None:
    """One spindle over its critical temperature per sample, each a new device; the time from
    just before the send (acks=all) until the alert row is visible to another connection."""
    conn = await asyncpg.connect(dsn)
    latencies = []
    try:
        for n in range(samples):
            device = f"bench-{tag}-hot-{n}"
            now = int(time.time() * 1000)
            reading = NormalisedReading(
                site=f"bench-{tag}",
                device_id=device,
                type="cnc_spindle",
                ts=now,
                seq=1,
                metrics={"running": True, "spindle_temp_c": 95.0},
                gateway_id=f"bench-gw-{tag}",
                received_ts=now,
            )
            t = time.monotonic()
            await produce(kafka, [(device.encode(), encode(reading))], TOPICS.telemetry)
            deadline = t + 30
            while not await conn.fetchval("SELECT 1 FROM alerts WHERE device_id = $1", device):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no alert for {device} within 30 s")
                await asyncio.sleep(0.002)
            latencies.append((time.monotonic() - t) * 1000)
    finally:
        await conn.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    record(Figure("hub_ingest", "alert latency produce -> alert row, p99", p99, "ms"))
    log(
        f"alert latency (produce -> alert row committed), {samples} samples: "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms "
        f"(HUB_INGEST_BATCH_WAIT_S={HubSettings().ingest_batch_wait_s})"
    )


async def main_async(args: argparse.Namespace) -> None:
    kafka = kafka_bootstrap()
    await ensure_topics(kafka, [*TOPICS.all(), HUB_DLQ])
    tag = uuid.uuid4().hex[:6]
    name = f"iot_bench_{tag}"
    dsn = await create_database(name)
    workers: list[HubWorkerProcess] = []
    try:
        t0_ms = (int(time.time()) - 3600) * 1000
        readings = make_readings(tag, args.readings, t0_ms)
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp, own_redis() as redis_url:
            workers, hub_rate = await ingest(
                kafka, dsn, Path(tmp), readings, tag, redis_url,
                per_value=args.per_value, workers=args.workers,
            )  # fmt: skip
            ref_rate = await reference_copy(dsn, readings)
            log(f"ratio hub / raw COPY: {hub_rate / ref_rate:.2f}")
            record(Figure("hub_ingest", f"hub ingest, {args.workers} worker(s)", hub_rate,
                          "rows/s", hub_rate / ref_rate, "one raw COPY"))  # fmt: skip
            if args.alert_samples:
                await alert_latency(kafka, dsn, tag, args.alert_samples)
            codes = [await worker.stop(120) for worker in workers]
            log(f"worker(s) stopped with exit code(s) {codes}")
    finally:
        for worker in workers:
            worker.cleanup()
        await drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=100_000, help="readings of 5 metrics each")
    parser.add_argument(
        "--per-value",
        type=int,
        default=10,
        help="readings per Kafka record (a version 2 value); 1: version 1 values",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes in one group")
    parser.add_argument("--alert-samples", type=int, default=50)
    args = parser.parse_args()
    run_services("start", "kafka", "postgres", "redis")
    isolate_children()  # the workers of this run use TOPICS, not the demo's topics
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
