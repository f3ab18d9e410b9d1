"""Values that cross the buffer port: records in, leased records and figures out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BufferRecord:
    """One Kafka record, already encoded, waiting to be forwarded."""

    topic: str
    key: bytes | None
    value: bytes
    created_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes counted against the budget: topic, key, value, header names and values.

        Text counts as UTF-8 bytes, which equals ``len()`` for Kafka's ASCII topic names.
        """
        size = len(self.topic.encode()) + len(self.value)
        if self.key is not None:
            size += len(self.key)
        for name, value in self.headers:
            size += len(name.encode()) + len(value)
        return size


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A leased record; ``id`` increases monotonically and defines "oldest first"."""

    id: int
    record: BufferRecord


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of one append().

    ``appended`` counts every record handed to append(); ``dropped`` counts the records dropped
    to stay within the byte budget, older stored ones and, when the batch alone does not fit,
    records of this batch (which are then never stored).
    """

    appended: int
    dropped: int


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A consistent snapshot of the buffer.

    Conservation law: ``appended_total == depth + acked_total + dropped_total``.
    """

    depth: int  # stored, not yet acknowledged (pending + in flight)
    bytes: int  # their counted size
    in_flight: int  # leased, not yet acked or released
    oldest_created_ms: int | None  # created_ms of the stored record with the smallest id
    appended_total: int
    acked_total: int
    dropped_total: int
    max_bytes: int
    # Bytes appended (dropped ones included) and acknowledged since the buffer was opened in
    # this process: flows for rates (the runway), not state, so left out of comparisons.
    appended_bytes_total: int = field(default=0, compare=False)
    acked_bytes_total: int = field(default=0, compare=False)
