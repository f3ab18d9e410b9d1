"""Readings and devices against a real PostgreSQL: idempotent batches, partitions on demand,
devices kept current, retention by partition."""

from __future__ import annotations

import asyncio
import functools
import time

import asyncpg
import pytest

from hub.storage.partitions import (
    DAY_MS,
    DayPartition,
    day_start_ms,
    drop_expired_partitions,
    ms_to_datetime,
)
from hub.storage.postgres import Database, WriteResult
from protocol import NormalisedReading
from tests.support.readings import make_reading

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


reading = functools.partial(make_reading, type="cnc_spindle")


def batch(devices: int, per_device: int, start: int = NOW) -> list[NormalisedReading]:
    return [
        reading(f"dev-{d}", start + i * 1000, {"temp_c": 20.0 + i, "running": i % 2 == 0}, seq=i)
        for d in range(devices)
        for i in range(per_device)
    ]


async def partition_names(pg: asyncpg.Connection) -> list[str]:
    rows = await pg.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'readings'::regclass ORDER BY 1"
    )
    return [r[0] for r in rows]


async def test_a_replayed_batch_adds_nothing(database: Database, pg: asyncpg.Connection) -> None:
    readings = batch(devices=3, per_device=50)
    assert await database.write_readings(readings) == WriteResult(rows=300, inserted=300, devices=3)
    assert await database.write_readings(readings) == WriteResult(rows=300, inserted=0, devices=3)
    # Half old, half new: only the new half lands.
    overlap = readings[25:50] + batch(devices=1, per_device=75)[50:]
    assert (await database.write_readings(overlap)).inserted == 50
    assert await pg.fetchval("SELECT count(*) FROM readings") == 350
    assert (
        await pg.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM readings GROUP BY device_id, metric, ts "
            "HAVING count(*) > 1) d"
        )
        == 0
    )


async def test_duplicates_inside_one_batch_are_absorbed(
    database: Database, pg: asyncpg.Connection
) -> None:
    one = reading("dup", NOW, {"temp_c": 1.0})
    result = await database.write_readings([one, one, reading("dup", NOW, {"temp_c": 2.0})])
    assert result == WriteResult(rows=3, inserted=1, devices=1)
    assert await pg.fetchval("SELECT value FROM readings WHERE device_id = 'dup'") == 1.0


async def test_values_timestamps_and_seq_are_stored_exactly(
    database: Database, pg: asyncpg.Connection
) -> None:
    ts = NOW - NOW % 1000 + 123
    await database.write_readings(
        [reading("exact", ts, {"temp_c": 231.5, "on": True, "off": False}, seq=2**62)]
    )
    rows = await pg.fetch(
        "SELECT metric, ts, value, seq FROM readings WHERE device_id = 'exact' ORDER BY metric"
    )
    assert [(r["metric"], r["value"]) for r in rows] == [
        ("off", 0.0),
        ("on", 1.0),
        ("temp_c", 231.5),
    ]
    assert {r["ts"] for r in rows} == {ms_to_datetime(ts)}
    assert {r["seq"] for r in rows} == {2**62}


async def test_what_the_binary_copy_writes_reads_back_the_same(
    database: Database, pg: asyncpg.Connection
) -> None:
    # Before PostgreSQL's epoch (2000-01-01) its timestamps are negative; no seq is NULL.
    before_2000 = 946_684_800_000 - 1
    values = {"big": -1e15, "tiny": 5e-324, "zero": -0.0, "int": 7, "flag": True}
    written = [
        reading("bin-1", before_2000, values, seq=None),
        reading("bin-2", NOW, {"big": 1e15}, seq=0),
    ]
    assert await database.write_readings(written) == WriteResult(rows=6, inserted=6, devices=2)
    rows = await pg.fetch(
        "SELECT device_id, metric, ts, value, seq FROM readings "
        "WHERE device_id LIKE 'bin-%' ORDER BY device_id, metric"
    )
    expected = sorted(
        (r.device_id, metric, ms_to_datetime(r.ts), float(value), r.seq)
        for r in written
        for metric, value in r.metrics.items()
    )
    assert [tuple(row) for row in rows] == expected


async def test_a_day_without_partition_gets_one(database: Database, pg: asyncpg.Connection) -> None:
    await database.ensure_partitions(NOW, ahead_days=1)
    past, future = NOW - 400 * DAY_MS, NOW + 40 * DAY_MS
    readings = [reading("far", past, {"x": 1.0}), reading("far", NOW, {"x": 2.0})]
    assert (await database.write_readings(readings)).inserted == 2
    assert (await database.write_readings([reading("far", future, {"x": 3.0})])).inserted == 1
    names = await partition_names(pg)
    assert DayPartition.of(past).name in names
    assert DayPartition.of(future).name in names
    assert await pg.fetchval("SELECT count(*) FROM readings WHERE device_id = 'far'") == 3
    assert await pg.fetchval("SELECT count(*) FROM ONLY readings") == 0


async def test_writers_racing_for_a_missing_partition_all_succeed(
    database: Database, pg: asyncpg.Connection
) -> None:
    day = NOW - 100 * DAY_MS
    batches = [batch(devices=1, per_device=20, start=day + n * 100_000) for n in range(4)]
    for n, b in enumerate(batches):
        batches[n] = [r.model_copy(update={"device_id": f"race-{n}"}) for r in b]
    results = await asyncio.gather(*(database.write_readings(b) for b in batches))
    assert sum(r.inserted for r in results) == 4 * 40
    assert DayPartition.of(day).name in await partition_names(pg)


async def test_a_new_device_gets_its_row(database: Database, pg: asyncpg.Connection) -> None:
    await database.write_readings(
        [
            reading("new-1", NOW, {"a": 1.0}, site="site-9", gateway_id="gw-9", type="press"),
            reading("new-1", NOW + 1000, {"b": True}, site="site-9", gateway_id="gw-9", type=None),
        ]
    )
    row = await pg.fetchrow("SELECT * FROM devices WHERE device_id = 'new-1'")
    assert row is not None
    assert (row["site"], row["gateway_id"], row["type"]) == ("site-9", "gw-9", "press")
    assert row["first_seen"] == ms_to_datetime(NOW)
    assert row["last_seen"] == ms_to_datetime(NOW + 1000)
    assert row["state"] == "unknown"
    assert row["metrics"] == ["a", "b"]


async def test_last_seen_only_moves_forward(database: Database, pg: asyncpg.Connection) -> None:
    await database.write_readings([reading("ooo", NOW, {"a": 1.0}, gateway_id="gw-new")])
    # A late batch from before: widens first_seen and adds its metric, but does not move
    # last_seen back nor bring back the old gateway.
    await database.write_readings(
        [reading("ooo", NOW - 60_000, {"b": 1.0}, gateway_id="gw-old", type="press")]
    )
    row = await pg.fetchrow("SELECT * FROM devices WHERE device_id = 'ooo'")
    assert row is not None
    assert row["last_seen"] == ms_to_datetime(NOW)
    assert row["first_seen"] == ms_to_datetime(NOW - 60_000)
    assert row["gateway_id"] == "gw-new"
    assert row["metrics"] == ["a", "b"]
    await database.write_readings([reading("ooo", NOW + 5000, {"a": 2.0}, gateway_id="gw-3")])
    row = await pg.fetchrow("SELECT * FROM devices WHERE device_id = 'ooo'")
    assert row is not None
    assert row["last_seen"] == ms_to_datetime(NOW + 5000)
    assert row["gateway_id"] == "gw-3"


async def test_a_failed_batch_keeps_nothing(database: Database, pg: asyncpg.Connection) -> None:
    await database.ensure_partitions(NOW, ahead_days=0)
    await pg.execute(
        "ALTER TABLE devices ADD CONSTRAINT test_no_bad_site CHECK (site <> 'bad-site')"
    )
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await database.write_readings([reading("fail", NOW, {"a": 1.0}, site="bad-site")])
    finally:
        await pg.execute("ALTER TABLE devices DROP CONSTRAINT test_no_bad_site")
    assert await pg.fetchval("SELECT count(*) FROM readings WHERE device_id = 'fail'") == 0
    # The connection and its staging table are fine afterwards.
    assert (await database.write_readings([reading("fail", NOW, {"a": 1.0})])).inserted == 1


async def test_presence_observed_by_the_hub(database: Database, pg: asyncpg.Connection) -> None:
    assert await database.mark_presence("pr-1", "offline", NOW) is False  # unknown: left alone
    assert await database.set_device_state("pr-1", "site-1", "gw-1", "online", NOW) is True
    assert await database.mark_presence("pr-1", "offline", NOW + 10) is True
    assert await database.mark_presence("pr-1", "offline", NOW + 20) is False  # unchanged
    assert await database.set_device_state("pr-1", "site-1", "gw-1", "online", NOW + 30) is True
    assert await database.mark_presence("pr-1", "offline", NOW + 25) is False  # older than that
    row = await pg.fetchrow("SELECT state, site, gateway_id FROM devices WHERE device_id = 'pr-1'")
    assert row is not None
    assert (row["state"], row["site"], row["gateway_id"]) == ("online", "site-1", "gw-1")
    with pytest.raises(ValueError, match="unknown device state"):
        await database.mark_presence("pr-1", "asleep", NOW + 40)


async def test_device_state_changes_in_ts_order(database: Database, pg: asyncpg.Connection) -> None:
    assert await database.set_device_state("st-1", "site-1", "gw-1", "online", NOW) is True
    assert await database.set_device_state("st-1", "site-1", "gw-1", "online", NOW + 1) is False
    assert await database.set_device_state("st-1", "site-1", "gw-1", "offline", NOW + 2) is True
    # Late and stale: an older "online" does not undo the newer "offline".
    assert await database.set_device_state("st-1", "site-1", "gw-1", "online", NOW + 1) is False
    row = await pg.fetchrow("SELECT * FROM devices WHERE device_id = 'st-1'")
    assert row is not None
    assert row["state"] == "offline"
    assert row["state_changed_at"] == ms_to_datetime(NOW + 2)
    assert row["first_seen"] == ms_to_datetime(NOW)
    assert row["last_seen"] is None  # no telemetry yet
    with pytest.raises(ValueError, match="unknown device state"):
        await database.set_device_state("st-1", "site-1", "gw-1", "sleeping", NOW + 3)
    # Telemetry for a device known from its status keeps the state.
    await database.write_readings([reading("st-1", NOW + 3, {"a": 1.0})])
    row = await pg.fetchrow("SELECT * FROM devices WHERE device_id = 'st-1'")
    assert row is not None
    assert (row["state"], row["last_seen"]) == ("offline", ms_to_datetime(NOW + 3))


async def test_ensure_partitions_creates_the_window_once(
    database: Database, pg: asyncpg.Connection
) -> None:
    created = await database.ensure_partitions(NOW, ahead_days=3, behind_days=1)
    assert created == [DayPartition(day_start_ms(NOW) + n * DAY_MS).name for n in range(-1, 4)]
    assert await database.ensure_partitions(NOW, ahead_days=3, behind_days=1) == []
    assert await partition_names(pg) == sorted(created)


async def test_drop_expired_partitions_removes_only_old_days(
    database: Database, pg: asyncpg.Connection
) -> None:
    await database.ensure_partitions(NOW, ahead_days=1, behind_days=10)
    old, kept = NOW - 5 * DAY_MS, NOW - 2 * DAY_MS
    await database.write_readings(
        [
            reading("ret", old, {"a": 1.0}),
            reading("ret", kept, {"a": 2.0}),
            reading("ret", NOW, {"a": 3.0}),
        ]
    )
    dropped = await database.drop_expired_partitions(NOW, retention_days=3)
    today = day_start_ms(NOW)
    assert dropped == [DayPartition(today - n * DAY_MS).name for n in range(10, 3, -1)]
    names = await partition_names(pg)
    assert names == [DayPartition(today + n * DAY_MS).name for n in range(-3, 2)]
    values = await pg.fetch("SELECT value FROM readings WHERE device_id = 'ret' ORDER BY ts")
    assert [r[0] for r in values] == [2.0, 3.0]
    assert await database.drop_expired_partitions(NOW, retention_days=3) == []
    # Even the shortest retention keeps today (and the partitions ahead).
    await database.drop_expired_partitions(NOW, retention_days=1)
    assert DayPartition.of(NOW).name in await partition_names(pg)


async def test_partition_ddl_does_not_wait_for_readers(
    database: Database, pg: asyncpg.Connection, postgres: str
) -> None:
    old, new = NOW - 30 * DAY_MS, NOW - 100 * DAY_MS
    await database.write_readings([reading("ddl", old, {"a": 1.0})])
    reader = await asyncpg.connect(postgres)
    try:
        async with reader.transaction():
            # A long dashboard query, in the middle of its transaction.
            assert await reader.fetchval("SELECT count(*) FROM readings") == 1
            # A day without partition: created and attached without waiting for the reader.
            written = await database.write_readings([reading("ddl", new, {"a": 2.0})])
            assert written.inserted == 1
            # Retention: DETACH CONCURRENTLY waits for the reader; timed out, the partition is
            # left "detach pending"...
            with pytest.raises(asyncpg.LockNotAvailableError):
                await drop_expired_partitions(pg, NOW, retention_days=10, lock_timeout_s=0.2)
            pending = "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            assert (
                await pg.fetchval(pending + "WHERE i.inhdetachpending") == DayPartition.of(new).name
            )
    finally:
        await reader.close()
    # ...and the next run finishes the job.
    assert await drop_expired_partitions(pg, NOW, retention_days=10) == sorted(
        [DayPartition.of(old).name, DayPartition.of(new).name]
    )
    assert await pg.fetchval("SELECT count(*) FROM readings WHERE device_id = 'ddl'") == 0


async def test_retention_drops_a_day_table_left_detached(
    database: Database, pg: asyncpg.Connection
) -> None:
    old = NOW - 30 * DAY_MS
    await database.write_readings([reading("orphan", old, {"a": 1.0})])
    name = DayPartition.of(old).name
    # As if a retention run died between detaching and dropping.
    await pg.execute(f"ALTER TABLE readings DETACH PARTITION {name}")
    assert name not in await partition_names(pg)
    assert await database.drop_expired_partitions(NOW, retention_days=10) == [name]
    assert await pg.fetchval("SELECT to_regclass($1)", name) is None
