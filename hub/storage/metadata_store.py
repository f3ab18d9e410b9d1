"""Stored device metadata documents (hub.metadata.model): the `MetadataStore` port and its
PostgreSQL adapter (table `device_metadata`, db/0008_device_metadata.sql); the in-memory one is
`hub.storage.memory_metadata`. Both are held to tests/contracts/metadata_store.py.

One document per (scope, key, source): a new one replaces the old. Documents are checked by the
callers (hub.metadata.model.parse_document) before they are stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import asyncpg

from hub.storage.partitions import datetime_to_ms

__all__ = [
    "SCOPES",
    "STORED_SOURCES",
    "MetadataEntry",
    "MetadataStore",
    "PostgresMetadataStore",
    "Scope",
    "StoredSource",
    "check_entry",
]

Scope = Literal["type", "device"]
StoredSource = Literal["edge", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("type", "device")
STORED_SOURCES: Final[tuple[StoredSource, ...]] = ("edge", "admin")
MAX_KEY: Final = 128


@dataclass(frozen=True, slots=True)
class MetadataEntry:
    scope: Scope
    key: str  # the device type or the device id
    source: StoredSource
    document: dict[str, Any]
    updated_by: str
    updated_at: int  # epoch ms


def check_entry(scope: str, key: str, source: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    if not 1 <= len(key) <= MAX_KEY:
        raise ValueError(f"key: 1 to {MAX_KEY} characters, got {len(key)}")
    if source not in STORED_SOURCES:
        raise ValueError(f"source: expected one of {', '.join(STORED_SOURCES)}, got {source!r}")


class MetadataStore(Protocol):
    async def put(
        self, scope: Scope, key: str, source: StoredSource, document: dict[str, Any], by: str
    ) -> MetadataEntry:
        """Store (replace) the document of (scope, key, source)."""
        ...

    async def delete(self, scope: Scope, key: str, source: StoredSource) -> bool: ...

    async def entries(self, scope: Scope, key: str | None = None) -> list[MetadataEntry]:
        """The documents of one key (or of every key) of a scope, by key then source."""
        ...


_COLUMNS: Final = "scope, key, source, document, updated_by, updated_at"


def _entry(row: asyncpg.Record) -> MetadataEntry:
    document = row["document"]
    return MetadataEntry(
        scope=row["scope"],
        key=row["key"],
        source=row["source"],
        document=json.loads(document) if isinstance(document, str) else dict(document),
        updated_by=row["updated_by"],
        updated_at=datetime_to_ms(row["updated_at"]),
    )


class PostgresMetadataStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(
        self, scope: Scope, key: str, source: StoredSource, document: dict[str, Any], by: str
    ) -> MetadataEntry:
        check_entry(scope, key, source)
        row = await self._pool.fetchrow(
            f"INSERT INTO device_metadata (scope, key, source, document, updated_by) "
            f"VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (scope, key, source) DO UPDATE "
            f"SET document = excluded.document, updated_by = excluded.updated_by, "
            f"updated_at = now() RETURNING {_COLUMNS}",
            scope,
            key,
            source,
            json.dumps(document),
            by,
        )
        assert row is not None
        return _entry(row)

    async def delete(self, scope: Scope, key: str, source: StoredSource) -> bool:
        check_entry(scope, key, source)
        status = await self._pool.execute(
            "DELETE FROM device_metadata WHERE scope = $1 AND key = $2 AND source = $3",
            scope,
            key,
            source,
        )
        return str(status).endswith(" 1")

    async def entries(self, scope: Scope, key: str | None = None) -> list[MetadataEntry]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM device_metadata WHERE scope = $1 "
            f"AND ($2::text IS NULL OR key = $2) ORDER BY key, source",
            scope,
            key,
        )
        return [_entry(r) for r in rows]
