"""`iot-hub migrate` and `iot-hub rollup rebuild` as processes against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from hub.storage.migrations import load_migrations
from tests.support.process import ROOT

pytestmark = pytest.mark.integration


def iot_hub(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_is_idempotent_and_prints_masked_settings(blank_database: str) -> None:
    first = await asyncio.to_thread(iot_hub, "migrate", database_url=blank_database)
    assert first.returncode == 0, first.stderr
    names = ",".join(m.name for m in load_migrations())
    assert names.startswith("0001_init,")
    assert f"event=migrate_done applied={names}" in first.stderr
    assert "HUB_DATABASE_URL=postgresql://iot:***@" in first.stdout
    password = blank_database.split(":")[2].split("@")[0]
    assert f":{password}@" not in first.stdout + first.stderr

    again = await asyncio.to_thread(iot_hub, "migrate", database_url=blank_database)
    assert again.returncode == 0, again.stderr
    assert "event=migrate_done applied=-" in again.stderr

    conn = await asyncpg.connect(blank_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
    finally:
        await conn.close()


async def test_migrate_reports_an_unreachable_database() -> None:
    result = await asyncio.to_thread(
        iot_hub, "migrate", database_url="postgresql://iot:iot@127.0.0.1:1/iot"
    )
    assert result.returncode == 1
    assert "event=migrate_failed" in result.stderr
    assert "Traceback" not in result.stderr


async def test_rollup_rebuild(postgres: str, pg: asyncpg.Connection) -> None:
    result = await asyncio.to_thread(
        iot_hub, "rollup", "rebuild", "--since", "2026-11-27", database_url=postgres
    )
    assert result.returncode == 0, result.stderr
    assert "event=rollup_rebuild_done since_ms=1795737600000 rows_written=0" in result.stderr


async def test_rollup_rebuild_skips_a_minute_it_cannot_compute(
    postgres: str, pg: asyncpg.Connection
) -> None:
    """Rows from before the hub bounded values overflow avg(); that minute is skipped and
    named, every other minute is rebuilt."""
    await pg.execute(
        "CREATE TABLE readings_p20261130 PARTITION OF readings "
        "FOR VALUES FROM ('2026-11-30') TO ('2026-12-01')"
    )
    await pg.executemany(
        "INSERT INTO readings (device_id, metric, ts, value) "
        "VALUES ($1, 't', $2::text::timestamptz, $3)",
        [
            ("bad", "2026-11-30T08:00:01Z", 1.7e308),
            ("bad", "2026-11-30T08:00:02Z", 1.7e308),
            ("fine", "2026-11-30T08:00:03Z", 20.0),
            ("fine", "2026-11-30T09:30:00Z", 21.0),
        ],
    )
    result = await asyncio.to_thread(
        iot_hub, "rollup", "rebuild", "--since", "2026-11-30", database_url=postgres
    )
    assert result.returncode == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if "event=rollup_skipped" in line]
    assert len(skipped) == 1
    assert "device_id=bad metric=t bucket_ms=1796025600000 " in skipped[0]
    assert "rows_written=5 rows_1m=2 rows_1h=2 rows_1d=1 buckets_skipped=1" in result.stderr
    rolled = await pg.fetch("SELECT device_id FROM readings_1m ORDER BY bucket")
    assert [r["device_id"] for r in rolled] == ["fine", "fine"]


async def test_rollup_rebuild_of_a_coarse_tier_reads_the_tier_below(
    postgres: str, pg: asyncpg.Connection
) -> None:
    """`--tier 1h` leaves the minutes alone and remakes the hours from them, then the days;
    progress is logged per tier."""
    await pg.executemany(
        "INSERT INTO readings_1m (device_id, metric, bucket, count, min, max, avg, last, last_ts) "
        "VALUES ('d', 't', $1::text::timestamptz, $2, $3, $4, $5, $6, $7::text::timestamptz)",
        [
            ("2026-11-30T08:00:00Z", 2, 1.0, 3.0, 2.0, 3.0, "2026-11-30T08:00:30Z"),
            ("2026-11-30T08:59:00Z", 1, 7.0, 7.0, 7.0, 7.0, "2026-11-30T08:59:10Z"),
            ("2026-11-30T10:00:00Z", 1, 0.0, 0.0, 0.0, 0.0, "2026-11-30T10:00:10Z"),
        ],
    )
    result = await asyncio.to_thread(
        iot_hub, "rollups", "rebuild", "--tier", "1h", "--since", "2026-11-30",
        "--until", "2026-12-01", database_url=postgres,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rows_written=3 rows_1h=2 rows_1d=1 buckets_skipped=0" in result.stderr
    progress = [s for s in result.stderr.splitlines() if "event=rollup_rebuild_progress" in s]
    assert [line.split("tier=")[1].split()[0] for line in progress] == ["1h", "1d"]
    hours = await pg.fetch("SELECT count, min, max, avg, last FROM readings_1h ORDER BY bucket")
    assert [tuple(r) for r in hours] == [(3, 1.0, 7.0, 11.0 / 3, 7.0), (1, 0.0, 0.0, 0.0, 0.0)]
    day = await pg.fetchrow("SELECT count, min, max, last FROM readings_1d")
    assert tuple(day) == (4, 0.0, 7.0, 0.0)
    assert await pg.fetchval("SELECT count(*) FROM readings_1m") == 3  # untouched
