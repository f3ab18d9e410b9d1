"""Migrations against a real PostgreSQL: idempotent, recorded, atomic and safe to run at once."""

from __future__ import annotations

import asyncio

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
    assert sorted(results, key=len, reverse=True) == [shipped, [], [], []]
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
