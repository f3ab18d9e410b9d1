"""Versions of the rule edits (`hub.rules.edits`): the `RuleVersions` port and its PostgreSQL
adapter (table `rule_versions`, db/0007_rule_versions.sql); the in-memory one is
`hub.storage.memory_rule_versions`. Both are held to tests/contracts/rule_versions.py.

Append-only: a version is never changed; a rollback appends the older document again. Appending
names the version it was based on, so two admins editing at once cannot silently overwrite
each other: the second gets `VersionConflict` and edits again from the new version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

import asyncpg

from hub.storage.partitions import datetime_to_ms

__all__ = [
    "MAX_VERSIONS_PAGE",
    "PostgresRuleVersions",
    "RuleVersion",
    "RuleVersions",
    "VersionConflict",
]

MAX_VERSIONS_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class RuleVersion:
    version: int
    document: dict[str, Any]  # the edits, in the rule files' layout
    author: str
    created_at: int  # epoch ms
    comment: str | None = None
    rollback_of: int | None = None  # the version whose document this one restores


class VersionConflict(Exception):
    """Another edit was saved since the version the caller based its edit on."""

    def __init__(self, base: int, current: int) -> None:
        super().__init__(
            f"the rules changed meanwhile: edit based on version {base}, current is {current}"
        )
        self.base = base
        self.current = current


class RuleVersions(Protocol):
    async def current_version(self) -> int:
        """The newest version's number; 0 before the first edit."""
        ...

    async def get(self, version: int) -> RuleVersion | None: ...

    async def latest(self) -> RuleVersion | None: ...

    async def history(self, limit: int = 100, offset: int = 0) -> list[RuleVersion]:
        """Newest first."""
        ...

    async def append(
        self,
        document: dict[str, Any],
        *,
        author: str,
        base: int,
        comment: str | None = None,
        rollback_of: int | None = None,
    ) -> RuleVersion:
        """Version `base + 1`; VersionConflict unless `base` is the current version."""
        ...


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_VERSIONS_PAGE:
        raise ValueError(f"limit must be 1..{MAX_VERSIONS_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


_COLUMNS: Final = "version, document, author, created_at, comment, rollback_of"


def _version(row: asyncpg.Record) -> RuleVersion:
    document = row["document"]
    return RuleVersion(
        version=row["version"],
        document=json.loads(document) if isinstance(document, str) else dict(document),
        author=row["author"],
        created_at=datetime_to_ms(row["created_at"]),
        comment=row["comment"],
        rollback_of=row["rollback_of"],
    )


class PostgresRuleVersions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def current_version(self) -> int:
        value = await self._pool.fetchval("SELECT coalesce(max(version), 0) FROM rule_versions")
        return int(value)

    async def get(self, version: int) -> RuleVersion | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM rule_versions WHERE version = $1", version
        )
        return None if row is None else _version(row)

    async def latest(self) -> RuleVersion | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM rule_versions ORDER BY version DESC LIMIT 1"
        )
        return None if row is None else _version(row)

    async def history(self, limit: int = 100, offset: int = 0) -> list[RuleVersion]:
        check_page(limit, offset)
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM rule_versions ORDER BY version DESC LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        return [_version(r) for r in rows]

    async def append(
        self,
        document: dict[str, Any],
        *,
        author: str,
        base: int,
        comment: str | None = None,
        rollback_of: int | None = None,
    ) -> RuleVersion:
        async with self._pool.acquire() as conn, conn.transaction():
            current = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM rule_versions")
            )
            if current != base:
                raise VersionConflict(base, current)
            try:
                # Two appends on the same base both pass the check; the key refuses the second.
                row = await conn.fetchrow(
                    f"INSERT INTO rule_versions (version, document, author, comment, rollback_of) "
                    f"VALUES ($1, $2::jsonb, $3, $4, $5) RETURNING {_COLUMNS}",
                    base + 1,
                    json.dumps(document),
                    author,
                    comment,
                    rollback_of,
                )
            except asyncpg.UniqueViolationError:
                raise VersionConflict(base, base + 1) from None
            except asyncpg.ForeignKeyViolationError:
                raise ValueError(f"rollback_of: no version {rollback_of}") from None
        assert row is not None
        return _version(row)
