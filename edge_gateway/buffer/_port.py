"""The buffer port: what the bridge and the forwarder code against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from edge_gateway.buffer._model import AppendResult, BufferRecord, BufferStats, StoredRecord


@runtime_checkable
class Buffer(Protocol):
    """Store-and-forward buffer. Implementations are safe to call from several threads."""

    def append(self, records: Sequence[BufferRecord]) -> AppendResult:
        """Store the batch in one transaction, durable when this returns.

        When the byte budget is exceeded the oldest records that are not in flight are dropped
        (and counted); a record larger than the whole budget is dropped itself.
        """
        ...

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[StoredRecord]:
        """Mark and return the oldest records that are not in flight.

        Returns at least one record whenever one is available, even if it alone exceeds
        ``max_bytes``. ``max_records`` must be at least 1.
        """
        ...

    def ack(self, ids: Iterable[int]) -> int:
        """Delete these records (one transaction); return how many were actually deleted.

        Ids that are unknown, already acked or dropped meanwhile are ignored.
        """
        ...

    def release(self, ids: Iterable[int]) -> None:
        """Return leased records to pending; they are leased again before any newer record."""
        ...

    def stats(self) -> BufferStats:
        """Counters and gauges, O(1)."""
        ...

    def close(self) -> None:
        """Release resources; idempotent. Records in flight are pending again on reopen."""
        ...
