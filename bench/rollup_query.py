"""Rollup benchmark: a 30-day and a 365-day chart query through the hub's real read path
(`PostgresReadModel.series`, which picks a rollup tier), against a plain scan of `readings` for
the same device, metric and range (what a chart without rollups reads), in the same run.

The readings are made by a fast generator, not through the pipeline: one `INSERT ... SELECT
FROM generate_series` per day into a fresh day table (unlogged: this database is thrown away),
its primary key built after the load, then attached as that day's partition of `readings`.
The rollups are then built by the hub's own rebuild path (`iot-hub rollup rebuild`'s code:
`readings_1m` from `readings`, `readings_1h` from it, `readings_1d` from that), timed too.
Everything happens in a database of this run only, created here and dropped at the end.

    python -m bench.rollup_query                 # 100 million rows over 365 days
    python -m bench.rollup_query --rows 2000000  # a quick run

Prints figures; asserts nothing. Needs PostgreSQL (`make services`) and about 11 GB of disk per
100 million rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.agents.aggregate import RollupCounters
from hub.agents.retry import is_record_error
from hub.agents.tier_rollups import Progress, rebuild_tiers, tiers_from
from hub.storage.migrations import migrate
from hub.storage.partitions import DAY_MS, PARENT, DayPartition, ms_to_datetime
from hub.storage.postgres import Database
from hub.storage.read_model import PostgresReadModel, redis_client
from hub.storage.tiers import tier

ADMIN_DSN = os.environ.get("HUB_DATABASE_URL", "postgresql://iot:iot@127.0.0.1:5432/iot")

# The day's rows in primary key order, so the index build after the load sorts little.
# $1 day start, $2 readings per series in the day, $3 metrics per device, $4 devices.
_FILL_DAY = """
INSERT INTO {table} (device_id, metric, ts, value, seq)
SELECT 'bench-' || (i / ($2::int * $3::int)), 'metric_' || ((i / $2::int) % $3::int),
       $1::timestamptz + ((i % $2::int) * (86400.0 / $2::int))::float8 * interval '1 second',
       50 + 20 * sin(((i % $2::int) / 700.0)::float8) + ((i * 7919) % 1000) / 100.0,
       i % $2::int
FROM generate_series(0::bigint, $2::bigint * $3::int * $4::int - 1) AS i
"""
_PLAIN_SCAN = f"""
SELECT ts, value FROM {PARENT}
WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts < $4
ORDER BY ts
"""


def log(msg: str) -> None:
    print(msg, flush=True)


@dataclass(frozen=True)
class Layout:
    rows: int
    days: int
    devices: int
    metrics: int

    @property
    def series(self) -> int:
        return self.devices * self.metrics

    @property
    def per_series_day(self) -> int:
        return max(1, self.rows // (self.series * self.days))

    @property
    def total(self) -> int:
        return self.per_series_day * self.series * self.days


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.rollup_query",
        description="Time a 30-day and a 365-day chart query through the hub's read path "
        "(rollup tiers) against a plain scan of readings, over a generated table.",
    )
    p.add_argument("--rows", type=int, default=100_000_000, help="readings to generate")
    p.add_argument("--days", type=int, default=365, help="days the readings span (>= 365)")
    p.add_argument("--devices", type=int, default=2, help="devices")
    p.add_argument("--metrics", type=int, default=5, help="metrics per device")
    p.add_argument(
        "--jobs", type=int, default=2, help="connections generating days and rebuilding minutes"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each chart query")
    p.add_argument("--scan-repeats", type=int, default=3, help="timed runs of each plain scan")
    p.add_argument("--max-points", type=int, default=1000, help="the chart's max_points")
    p.add_argument("--dsn", default=ADMIN_DSN, help="an existing database to connect as admin")
    args = p.parse_args(argv)
    if args.days < 365:
        p.error("--days must be at least 365 (the 365-day chart reads a year)")
    return args


async def create_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        # The rebuild's GROUP BY over a day of readings stays in memory.
        await conn.execute(f"ALTER DATABASE \"{name}\" SET work_mem = '64MB'")
    finally:
        await conn.close()
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        # Not WITH (FORCE): that needs the right to end other roles' backends, and plain DROP
        # already stops an autovacuum worker in the database (our own connections are closed).
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def fill_day(conn: asyncpg.Connection, day: DayPartition, layout: Layout) -> None:
    table = day.name
    start, end = ms_to_datetime(day.start_ms).isoformat(), ms_to_datetime(day.end_ms).isoformat()
    await conn.execute(f"CREATE UNLOGGED TABLE {table} (LIKE {PARENT} INCLUDING DEFAULTS)")
    await conn.execute(
        _FILL_DAY.format(table=table),
        ms_to_datetime(day.start_ms),
        layout.per_series_day,
        layout.metrics,
        layout.devices,
    )
    await conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (device_id, metric, ts)")
    # The bounds as a valid CHECK first: attaching then skips its own scan of the rows.
    await conn.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_bounds "
        f"CHECK (ts >= '{start}' AND ts < '{end}')"
    )
    await conn.execute(
        f"ALTER TABLE {PARENT} ATTACH PARTITION {table} FOR VALUES FROM ('{start}') TO ('{end}')"
    )
    await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_bounds")


async def generate(dsn: str, layout: Layout, first_day_ms: int, jobs: int) -> float:
    days = [DayPartition(first_day_ms + n * DAY_MS) for n in range(layout.days)]
    queue: asyncio.Queue[DayPartition] = asyncio.Queue()
    for day in days:
        queue.put_nowait(day)
    done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        try:
            while not queue.empty():
                await fill_day(conn, queue.get_nowait(), layout)
                done += 1
                if done % 10 == 0 or done == len(days):
                    rate = done * layout.total / layout.days / (time.perf_counter() - started)
                    log(f"  generated {done}/{len(days)} days ({rate:,.0f} rows/s)")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(jobs)))
    return time.perf_counter() - started


async def build_rollups(
    db: Database, dsn: str, since_ms: int, until_ms: int, jobs: int
) -> dict[str, float]:
    """Each tier in turn through the hub's rebuild path; the minutes (most of the work) in
    ``jobs`` contiguous parts at once, as several `iot-hub rollup rebuild --tier 1m` would."""
    seconds: dict[str, float] = {}
    for name in tiers_from("all"):
        started = time.perf_counter()
        await analyze(dsn, tier(name).source)  # as autovacuum would have by now
        parts = jobs if name == "1m" else 1
        step = -(-(until_ms - since_ms) // (parts * DAY_MS)) * DAY_MS

        def progress(p: Progress) -> None:
            if p.done % 60 == 0 or p.done == p.chunks:
                log(f"  rollup {p.tier}: {p.done}/{p.chunks} chunks, {p.rows_written:,} rows")

        await asyncio.gather(
            *(
                rebuild_tiers(
                    db,
                    [name],
                    lo,
                    min(lo + step, until_ms),
                    RollupCounters(),
                    is_poison=is_record_error,
                    progress=progress,
                )
                for lo in range(since_ms, until_ms, step)
            )
        )
        seconds[name] = time.perf_counter() - started
    return seconds


async def analyze(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


async def timed(repeats: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def spread(times: list[float]) -> str:
    return (
        f"min {min(times):8.1f}  median {statistics.median(times):8.1f}  max {max(times):8.1f} ms"
    )


async def compare(dsn: str, end_ms: int, days: int, args: argparse.Namespace) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    redis = redis_client("redis://127.0.0.1:6379/0")  # never used by a series read
    reads = PostgresReadModel(pool, redis)
    start_ms = end_ms - days * DAY_MS
    device, metric = "bench-0", "metric_0"
    try:
        chart_times, series = await timed(
            args.repeats,
            lambda: reads.series(device, metric, start_ms, end_ms, args.max_points),
        )

        async def plain() -> int:
            rows = await pool.fetch(
                _PLAIN_SCAN, device, metric, ms_to_datetime(start_ms), ms_to_datetime(end_ms)
            )
            return len(rows)

        scan_times, scanned = await timed(args.scan_repeats, plain)
    finally:
        await pool.close()
        await redis.aclose()
    return {
        "days": days,
        "chart": chart_times,
        "scan": scan_times,
        "source": series.source,
        "points": len(series.ts),
        "scanned": scanned,
    }


def report(result: dict[str, Any]) -> None:
    chart, scan = result["chart"], result["scan"]
    ratio = statistics.median(scan) / statistics.median(chart)
    log(f"{result['days']}-day chart, one metric:")
    log(f"  read path (tier {result['source']}, {result['points']} points)  {spread(chart)}")
    log(f"  plain scan of readings ({result['scanned']:,} rows)  {spread(scan)}")
    log(f"  plain scan / read path (medians): {ratio:,.0f}x")


async def run(args: argparse.Namespace) -> None:
    layout = Layout(args.rows, args.days, args.devices, args.metrics)
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    first_day = today - layout.days * DAY_MS
    name = f"iot_bench_rollups_{os.getpid()}"
    log(
        f"{layout.total:,} readings: {layout.devices} devices x {layout.metrics} metrics, "
        f"{layout.per_series_day:,} per series per day "
        f"(every {86400 / layout.per_series_day:.2f} s) over {layout.days} days; database {name}"
    )
    dsn = await create_database(args.dsn, name)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        gen_s = await generate(dsn, layout, first_day, args.jobs)
        log(f"generated in {gen_s:,.0f} s ({layout.total / gen_s:,.0f} rows/s)")
        db = await Database.connect(dsn)
        try:
            rollup_s = await build_rollups(db, dsn, first_day, today, args.jobs)
        finally:
            await db.close()
        log("rollups rebuilt: " + ", ".join(f"{k} {v:,.0f} s" for k, v in rollup_s.items()))
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("ANALYZE")
            sizes = await conn.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            )
        finally:
            await conn.close()
        log(
            f"database size {sizes}; {args.repeats} runs of each chart query and "
            f"{args.scan_repeats} of each plain scan, one after the other (warm cache)"
        )
        for days in (30, 365):
            report(await compare(dsn, today, days, args))
    finally:
        await drop_database(args.dsn, name)
        log(f"dropped {name}")


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
