"""SQLite adapter of the buffer port: durable, WAL mode, one file per gateway.

Durability: every append/ack is one transaction. With ``synchronous=FULL`` a committed append
survives power loss; with ``NORMAL`` (WAL) it survives a crash or SIGKILL of the process but the
last transactions may roll back on power loss. Acks always commit as ``NORMAL``: an ack that a
power cut rolls back only sends its records to Kafka again (the hub absorbs the repeat), and an
append commits as FULL fsyncs the write-ahead log with every ack before it, in order. That
halves the fsyncs of a busy buffer.

The file is meant to be owned by one process at a time: the in-memory accounting is loaded once,
at open.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from edge_gateway.buffer._accounting import BufferAccounting
from edge_gateway.buffer._model import AppendResult, BufferRecord, BufferStats, StoredRecord

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 10_000
_WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, about 4 MiB of WAL
_JOURNAL_SIZE_LIMIT_BYTES = 32 * 1024 * 1024  # truncate a WAL that grew past this
# Shrink the file after an outage drained, a bounded step per ack so no ack stalls for long.
# Below this share of free pages they are left for new appends to reuse.
_VACUUM_MIN_FREE_PAGES = 1024
_VACUUM_FREE_SHARE = 0.25
_VACUUM_STEP_PAGES = 2048
_ID_CHUNK = 500  # ids per "IN (...)" query, below every SQLite's host-parameter limit
# Newest appended records are also kept in memory, so the forwarder's lease of a caught-up buffer
# reads nothing back from the file; after an outage the backlog is read from the file.
_CACHE_MAX_BYTES = 16 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('appended', 0), ('acked', 0), ('dropped', 0);
"""

_INSERT = (
    "INSERT INTO records (topic, key, value, headers, created_ms, size) VALUES (?, ?, ?, ?, ?, ?)"
)
_DELETE_RANGE = "DELETE FROM records WHERE id BETWEEN ? AND ?"
_ADD_TO_COUNTER = "UPDATE counters SET value = value + ? WHERE name = ?"

_LENGTHS = struct.Struct(">II")


def id_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive (first, last) runs: one range delete per run, not per id."""
    runs: list[tuple[int, int]] = []
    for record_id in sorted(ids):
        if runs and record_id == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], record_id)
        else:
            runs.append((record_id, record_id))
    return runs


def encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    """Each header as big-endian u32 name length, u32 value length, UTF-8 name, value."""
    parts: list[bytes] = []
    for name, value in headers:
        encoded_name = name.encode()
        parts.append(_LENGTHS.pack(len(encoded_name), len(value)))
        parts.append(encoded_name)
        parts.append(value)
    return b"".join(parts)


def decode_headers(blob: bytes) -> tuple[tuple[str, bytes], ...]:
    headers: list[tuple[str, bytes]] = []
    offset, end = 0, len(blob)
    while offset < end:
        if offset + _LENGTHS.size > end:
            raise ValueError("truncated header lengths")
        name_length, value_length = _LENGTHS.unpack_from(blob, offset)
        offset += _LENGTHS.size
        value_start = offset + name_length
        value_end = value_start + value_length
        if value_end > end:
            raise ValueError("truncated header")
        headers.append((blob[offset:value_start].decode(), blob[value_start:value_end]))
        offset = value_end
    return tuple(headers)


class SqliteBuffer:
    """Durable buffer in one SQLite file (WAL); thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._synchronous = synchronous
        self._closed = False
        self._cache: OrderedDict[int, BufferRecord] = OrderedDict()
        self._cache_bytes = 0
        self._conn = sqlite3.connect(
            self._path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # guarded by self._lock
        )
        try:
            self._configure(synchronous)
            self._accounting = self._load(max_bytes)
        except BaseException:
            self._conn.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    # -- port --------------------------------------------------------------------------------

    def append(self, records: Sequence[BufferRecord]) -> AppendResult:
        with self._lock:
            self._check_open()
            sizes = [record.size for record in records]
            plan = self._accounting.plan_append(
                [(size, record.created_ms) for size, record in zip(sizes, records, strict=True)]
            )
            if not records and not plan.drop_ids:
                return self._accounting.commit_append(plan, ())
            ids: Sequence[int] = ()
            with self._transaction() as conn:
                if plan.drop_ids:
                    conn.executemany(_DELETE_RANGE, id_ranges(plan.drop_ids))
                if plan.keep:
                    conn.executemany(_INSERT, [_row(records[i], sizes[i]) for i in plan.keep])
                    # AUTOINCREMENT under our write lock hands out consecutive ids.
                    (last_id,) = conn.execute(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'records'"
                    ).fetchone()
                    ids = range(last_id - len(plan.keep) + 1, last_id + 1)
                if plan.result.appended:
                    conn.execute(_ADD_TO_COUNTER, (plan.result.appended, "appended"))
                if plan.result.dropped:
                    conn.execute(_ADD_TO_COUNTER, (plan.result.dropped, "dropped"))
            result = self._accounting.commit_append(plan, ids)
            self._uncache(plan.drop_ids)
            for record_id, i in zip(ids, plan.keep, strict=True):
                self._cache[record_id] = records[i]
                self._cache_bytes += sizes[i]
            while self._cache_bytes > _CACHE_MAX_BYTES:
                _, evicted = self._cache.popitem(last=False)
                self._cache_bytes -= evicted.size
            return result

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[StoredRecord]:
        with self._lock:
            self._check_open()
            ids = self._accounting.lease(max_records, max_bytes)
            if not ids:
                return []
            cache = self._cache
            missing = [record_id for record_id in ids if record_id not in cache]
            try:
                rows = self._fetch(missing) if missing else {}
            except BaseException:
                self._accounting.release(ids)
                raise
            return [StoredRecord(i, cache.get(i) or rows[i]) for i in ids]

    def ack(self, ids: Iterable[int]) -> int:
        with self._lock:
            self._check_open()
            plan = self._accounting.plan_ack(ids)
            if not plan.ids:
                return 0
            with self._transaction(durable=False) as conn:
                conn.executemany(_DELETE_RANGE, id_ranges(plan.ids))
                conn.execute(_ADD_TO_COUNTER, (len(plan.ids), "acked"))
            acked = self._accounting.commit_ack(plan)
            self._uncache(plan.ids)
            self._vacuum_step()
            return acked

    def release(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._check_open()
            self._accounting.release(ids)

    def stats(self) -> BufferStats:
        with self._lock:
            self._check_open()
            return self._accounting.stats()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __enter__(self) -> SqliteBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _configure(self, synchronous: str) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # Takes effect only on a new file, before the first table exists: lets _vacuum_step
        # hand free pages back to the file system after an outage drained.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self._path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT_BYTES}")

    def _load(self, max_bytes: int) -> BufferAccounting:
        conn = self._conn
        with self._transaction():
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self._path}: buffer schema {version} is newer than supported "
                    f"{SCHEMA_VERSION}"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            totals = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            accounting = BufferAccounting(
                max_bytes,
                appended_total=totals["appended"],
                acked_total=totals["acked"],
                dropped_total=totals["dropped"],
            )
            accounting.restore(conn.execute("SELECT id, size, created_ms FROM records ORDER BY id"))
        return accounting

    @contextmanager
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """`durable=False`: commit without waiting for the disk, whatever `synchronous` says."""
        conn = self._conn
        relaxed = not durable and self._synchronous == "FULL"
        if relaxed:
            conn.execute("PRAGMA synchronous = NORMAL")
        # IMMEDIATE takes the write lock up front, so a busy file fails here, not mid-way.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if relaxed:
                conn.execute("PRAGMA synchronous = FULL")

    def _uncache(self, ids: Iterable[int]) -> None:
        for record_id in ids:
            record = self._cache.pop(record_id, None)
            if record is not None:
                self._cache_bytes -= record.size

    def _fetch(self, ids: list[int]) -> dict[int, BufferRecord]:
        rows: dict[int, BufferRecord] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            placeholders = ",".join("?" * len(chunk))
            cursor = self._conn.execute(
                "SELECT id, topic, key, value, headers, created_ms FROM records "
                f"WHERE id IN ({placeholders})",
                chunk,
            )
            for record_id, topic, key, value, headers, created_ms in cursor:
                rows[record_id] = BufferRecord(
                    topic=topic,
                    key=key,
                    value=value,
                    created_ms=created_ms,
                    headers=decode_headers(headers) if headers else (),
                )
        if len(rows) != len(ids):
            missing = sorted(set(ids) - rows.keys())
            raise RuntimeError(
                f"{self._path}: {len(missing)} leased records missing from the file, "
                f"first id {missing[0]}; was it changed by another process?"
            )
        return rows

    def _vacuum_step(self) -> None:
        conn = self._conn
        try:
            (free,) = conn.execute("PRAGMA freelist_count").fetchone()
            if free < _VACUUM_MIN_FREE_PAGES:
                return
            (total,) = conn.execute("PRAGMA page_count").fetchone()
            if free < total * _VACUUM_FREE_SHARE:
                return
            # execute() would step this pragma once, freeing a single page; executescript()
            # runs it to completion.
            conn.executescript(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES})")
        except sqlite3.OperationalError as exc:
            # Only space reclamation failed; the ack itself has committed.
            logger.warning("buffer_vacuum_failed path=%s error=%s", self._path, exc)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("buffer is closed")


def _row(record: BufferRecord, size: int) -> tuple[str, bytes | None, bytes, bytes, int, int]:
    return (
        record.topic,
        record.key,
        record.value,
        encode_headers(record.headers),
        record.created_ms,
        size,
    )
