"""Migrations against a real PostgreSQL: idempotent, recorded, atomic and safe to run at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from hub.storage.migrations import Migration, MigrationError, load_migrations, migrate

pytestmark = pytest.mark.integration

TABLES = {"devices", "readings", "readings_1m", "alerts", "schema_migrations"}


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT relname FROM pg_class WHERE relkind = 'p'"
        )
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def recorded(dsn: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(r["version"], r["name"]) for r in rows]
    finally:
        await conn.close()


async def test_migrate_applies_everything_once_and_records_it(blank_database: str) -> None:
    shipped = [m.name for m in load_migrations()]
    assert await migrate(blank_database) == shipped
    assert await migrate(blank_database) == []  # idempotent
    assert await tables(blank_database) >= TABLES
    assert await recorded(blank_database) == [(m.version, m.name) for m in load_migrations()]


async def test_concurrent_migrations_apply_each_migration_exactly_once(
    blank_database: str,
) -> None:
    results = await asyncio.gather(*(migrate(blank_database) for _ in range(4)))
    shipped = [m.name for m in load_migrations()]
    # Each migration takes the lock on its own, so the four may share the work: whichever
    # holds the lock applies what is still pending.
    assert sorted(name for applied in results for name in applied) == shipped
    assert all(applied == sorted(applied) for applied in results)  # each in order
    assert [name for _, name in await recorded(blank_database)] == shipped


async def test_a_failing_migration_leaves_nothing_behind(blank_database: str) -> None:
    good = Migration(1, "0001_good", "CREATE TABLE good (id int)")
    bad = Migration(2, "0002_bad", "CREATE TABLE half (id int); SELECT 1 / 0")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(blank_database, migrations=[good, bad])
    assert await recorded(blank_database) == [(1, "0001_good")]
    assert "half" not in await tables(blank_database)
    fixed = Migration(2, "0002_bad", "CREATE TABLE half (id int)")
    assert await migrate(blank_database, migrations=[good, fixed]) == ["0002_bad"]


async def test_a_renamed_migration_is_refused(blank_database: str) -> None:
    await migrate(blank_database, migrations=[Migration(1, "0001_a", "SELECT 1")])
    with pytest.raises(MigrationError, match="recorded as '0001_a'"):
        await migrate(blank_database, migrations=[Migration(1, "0001_b", "SELECT 1")])


async def test_migrate_accepts_a_connection(blank_database: str) -> None:
    conn = await asyncpg.connect(blank_database)
    try:
        assert await migrate(conn) == [m.name for m in load_migrations()]
    finally:
        await conn.close()


async def test_the_hourly_and_daily_tiers_start_from_the_minutes_already_there(
    blank_database: str,
) -> None:
    shipped = load_migrations()
    await migrate(blank_database, migrations=[m for m in shipped if m.version < 4])
    conn = await asyncpg.connect(blank_database)
    try:
        await conn.executemany(
            "INSERT INTO readings_1m (device_id, metric, bucket, count, min, max, avg, last, "
            "last_ts) VALUES ('d', 't', $1::text::timestamptz, $2, $3, $4, $5, $6, "
            "$7::text::timestamptz)",
            [
                ("2026-11-30T08:00:00Z", 2, 1.0, 3.0, 2.0, 3.0, "2026-11-30T08:00:30Z"),
                ("2026-11-30T08:59:00Z", 1, 7.0, 7.0, 7.0, 7.0, "2026-11-30T08:59:10Z"),
                ("2026-11-30T23:00:00Z", 1, 0.0, 0.0, 0.0, 0.0, "2026-11-30T23:00:10Z"),
            ],
        )
        assert await migrate(blank_database) == [m.name for m in shipped if m.version >= 4]
        hours = await conn.fetch(
            "SELECT count, min, max, avg, last FROM readings_1h ORDER BY bucket"
        )
        assert [tuple(r) for r in hours] == [(3, 1.0, 7.0, 11.0 / 3, 7.0), (1, 0.0, 0.0, 0.0, 0.0)]
        day = await conn.fetch("SELECT bucket, count, min, max, last FROM readings_1d")
        midnight = datetime(2026, 11, 30, tzinfo=UTC)
        assert [tuple(r) for r in day] == [(midnight, 4, 0.0, 7.0, 0.0)]
    finally:
        await conn.close()
