"""In-memory adapter of the buffer port: the same rules as SqliteBuffer, without durability."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from edge_gateway.buffer._accounting import BufferAccounting
from edge_gateway.buffer._model import AppendResult, BufferRecord, BufferStats, StoredRecord


class MemoryBuffer:
    """Buffer kept in a dict; for tests of the components around the buffer."""

    def __init__(self, max_bytes: int) -> None:
        self._accounting = BufferAccounting(max_bytes)
        self._records: dict[int, BufferRecord] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._closed = False

    def append(self, records: Sequence[BufferRecord]) -> AppendResult:
        with self._lock:
            self._check_open()
            plan = self._accounting.plan_append([(r.size, r.created_ms) for r in records])
            for record_id in plan.drop_ids:
                del self._records[record_id]
            ids = range(self._next_id, self._next_id + len(plan.keep))
            for record_id, index in zip(ids, plan.keep, strict=True):
                self._records[record_id] = records[index]
            self._next_id += len(plan.keep)
            return self._accounting.commit_append(plan, ids)

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[StoredRecord]:
        with self._lock:
            self._check_open()
            ids = self._accounting.lease(max_records, max_bytes)
            return [StoredRecord(record_id, self._records[record_id]) for record_id in ids]

    def ack(self, ids: Iterable[int]) -> int:
        with self._lock:
            self._check_open()
            plan = self._accounting.plan_ack(ids)
            for record_id in plan.ids:
                del self._records[record_id]
            return self._accounting.commit_ack(plan)

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
            self._closed = True

    def __enter__(self) -> MemoryBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("buffer is closed")
