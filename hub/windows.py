"""Tumbling-window arithmetic for the 1-minute rollups. Pure: callers pass every time.

The aggregator marks each (device, metric, minute) a reading touches and, on each tick, asks
which buckets are due: a bucket is due `grace_ms` after its end, so readings that arrive a little
late still land before it is computed. A reading later than that marks its bucket again and the
bucket comes back as due at once, so the rollup is recomputed and corrected, never left stale.
"""

from __future__ import annotations

import heapq
from typing import Final

MINUTE_MS: Final = 60_000

BucketKey = tuple[str, str, int]  # (device_id, metric, bucket start in epoch ms)


def _check_width(width_ms: int) -> None:
    if width_ms <= 0:
        raise ValueError(f"width_ms must be > 0, got {width_ms}")


def bucket_start(ts_ms: int, width_ms: int = MINUTE_MS) -> int:
    """Start of the bucket holding `ts_ms`: [start, start + width_ms). Floors for negative ts."""
    _check_width(width_ms)
    return ts_ms - ts_ms % width_ms


def bucket_ceil(ts_ms: int, width_ms: int = MINUTE_MS) -> int:
    """Start of the first bucket at or after `ts_ms` (`ts_ms` itself on a boundary)."""
    _check_width(width_ms)
    return -(-ts_ms // width_ms) * width_ms


def bucket_end(ts_ms: int, width_ms: int = MINUTE_MS) -> int:
    """Exclusive end of the bucket holding `ts_ms`."""
    return bucket_start(ts_ms, width_ms) + width_ms


def due_at(ts_ms: int, grace_ms: int, width_ms: int = MINUTE_MS) -> int:
    """When the bucket holding `ts_ms` is due for computing: its end plus the grace period."""
    return bucket_end(ts_ms, width_ms) + grace_ms


def late(ts_ms: int, now_ms: int, grace_ms: int, width_ms: int = MINUTE_MS) -> bool:
    """Does a reading at `ts_ms` arrive after its bucket was due (so it corrects a rollup)?"""
    return now_ms >= due_at(ts_ms, grace_ms, width_ms)


class DirtyBuckets:
    """Buckets touched by readings and not yet computed, in due order.

    `mark` is idempotent while a bucket waits; `due` pops every bucket whose due time has come,
    ordered by (due time, device_id, metric), so the order never depends on arrival order.
    Memory: at most `max_pending` buckets stay pending after each `due` call; beyond that the
    earliest are handed out ahead of time, which costs only an extra recomputation if more of
    their readings follow.
    """

    def __init__(
        self, *, grace_ms: int, width_ms: int = MINUTE_MS, max_pending: int = 1_000_000
    ) -> None:
        _check_width(width_ms)
        if grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {grace_ms}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._grace_ms = grace_ms
        self._width_ms = width_ms
        self._max_pending = max_pending
        self._pending: set[BucketKey] = set()
        # (due_ms, device_id, metric, start); a key's due time is fixed by its bucket, so the
        # heap holds exactly the pending keys and never a stale entry.
        self._heap: list[tuple[int, str, str, int]] = []
        self.early_total = 0  # buckets handed out before their due time to bound memory

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def grace_ms(self) -> int:
        return self._grace_ms

    def mark(self, device_id: str, metric: str, ts_ms: int) -> None:
        start = bucket_start(ts_ms, self._width_ms)
        key = (device_id, metric, start)
        if key in self._pending:
            return
        self._pending.add(key)
        heapq.heappush(
            self._heap, (start + self._width_ms + self._grace_ms, device_id, metric, start)
        )

    def next_due_ms(self) -> int | None:
        """When the earliest pending bucket is due, or None when nothing is pending."""
        return self._heap[0][0] if self._heap else None

    def due(self, now_ms: int) -> list[BucketKey]:
        """Pop the buckets due at `now_ms` as (device_id, metric, bucket start)."""
        out: list[BucketKey] = []
        heap = self._heap
        while heap and (heap[0][0] <= now_ms or len(heap) > self._max_pending):
            due_ms, device_id, metric, start = heapq.heappop(heap)
            if due_ms > now_ms:
                self.early_total += 1
            key = (device_id, metric, start)
            self._pending.discard(key)
            out.append(key)
        return out
