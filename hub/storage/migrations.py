"""Apply the plain-SQL migrations shipped in the ``db`` package, in order, exactly once.

Each migration runs in its own transaction together with its ``schema_migrations`` row, so it is
applied completely or not at all. Every transaction first takes a transaction-scoped advisory
lock: hub processes starting at the same moment queue up, and each re-checks under the lock what
is still pending, so exactly one of them applies each migration and none fails.

Migrations must be transactional: no ``CREATE INDEX CONCURRENTLY`` or ``VACUUM``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final

import asyncpg

logger = logging.getLogger(__name__)

MIGRATIONS_PACKAGE: Final = "db"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Unique among our advisory locks (see hub.storage.partitions).
_LOCK_KEY: Final = 0x696F_7400_0000_0001

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED = "SELECT version, name FROM schema_migrations ORDER BY version"


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # file name without ".sql", e.g. "0001_init"
    sql: str


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``package``, by version; a badly named .sql file is an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file name not NNNN_name.sql: {entry.name}")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations numbered {version}: {entry.name}")
        found[version] = Migration(version, entry.name.removesuffix(".sql"), entry.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(
    target: asyncpg.Connection | str, *, migrations: Sequence[Migration] | None = None
) -> list[str]:
    """Apply the pending migrations (default: those of the ``db`` package) to ``target``, a
    connection or a DSN; returns the names applied, in order (empty when up to date)."""
    todo = load_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            return await _migrate(conn, todo)
        finally:
            await conn.close()
    return await _migrate(target, todo)


async def _migrate(conn: asyncpg.Connection, migrations: Sequence[Migration]) -> list[str]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_BOOTSTRAP)
        recorded = {r["version"]: r["name"] for r in await conn.fetch(_APPLIED)}
    known = {m.version for m in migrations}
    for version in sorted(set(recorded) - known):
        # The database is newer than this code (e.g. during a rollback): keep going, loudly.
        logger.warning(
            "database has a migration this code does not know",
            extra={"version": version, "migration": recorded[version]},
        )
    applied = []
    for migration in migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            name = await conn.fetchval(
                "SELECT name FROM schema_migrations WHERE version = $1", migration.version
            )
            if name is not None:
                if name != migration.name:
                    raise MigrationError(
                        f"migration {migration.version} is recorded as {name!r} "
                        f"but shipped as {migration.name!r}"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        logger.info(
            "migration applied", extra={"version": migration.version, "migration": migration.name}
        )
        applied.append(migration.name)
    return applied


async def missing_tables(dsn: str, tables: Sequence[str]) -> list[str]:
    """Which of ``tables`` the database lacks (none once it is migrated); the connection errors
    of asyncpg otherwise (unreachable, refused, bad credentials)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        missing = await conn.fetchval(
            "SELECT array_agg(t) FROM unnest($1::text[]) t WHERE to_regclass(t) IS NULL",
            list(tables),
        )
    finally:
        await conn.close()
    return list(missing or [])
