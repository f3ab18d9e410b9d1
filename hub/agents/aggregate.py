"""Aggregate: keep `readings_1m` exact by recomputing the minutes that committed batches touched.

Ingest marks every (device, metric, minute) of a batch once PostgreSQL has committed it; a timer
asks `RollupScheduler.take(now)` for what to recompute and hands it to
`Database.recompute_rollups`, which rebuilds each bucket from `readings` (so recomputing twice,
or after a replay, is harmless).

What `take` returns:

* buckets due: `rollup_grace_s` after the bucket's end (`hub.windows.DirtyBuckets`), so late
  readings land before the final computation, and a reading later still recomputes it again;
* and, for freshness, every bucket of the current or the previous minute touched since the last
  pass: the dashboard's 1-minute view moves with the data instead of lagging by the grace.
  Those buckets still come back once more when due.

After a crash the marks are gone; the worker's start-up rebuilds the last grace + 5 minutes
(`startup_rebuild_since_ms`), which covers every bucket that could still have been pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final, Protocol

from hub.windows import MINUTE_MS, BucketKey, DirtyBuckets, bucket_start
from protocol import NormalisedReading

log = logging.getLogger(__name__)

STARTUP_REBUILD_EXTRA_MS: Final = 5 * MINUTE_MS


class RollupStore(Protocol):
    """What aggregation needs from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int: ...

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int: ...


class RollupScheduler:
    """Which buckets to recompute, and when. Pure: the caller passes the time."""

    def __init__(self, *, grace_ms: int, max_pending: int = 1_000_000) -> None:
        self._dirty = DirtyBuckets(grace_ms=grace_ms, max_pending=max_pending)
        self._fresh: set[BucketKey] = set()

    def __len__(self) -> int:
        return len(self._dirty)

    def mark(self, device_id: str, metric: str, ts_ms: int, now_ms: int) -> None:
        self._dirty.mark(device_id, metric, ts_ms)
        start = bucket_start(ts_ms)
        if start >= bucket_start(now_ms) - MINUTE_MS:
            self._fresh.add((device_id, metric, start))

    def mark_readings(self, readings: Iterable[NormalisedReading], now_ms: int) -> None:
        for reading in readings:
            for metric in reading.metrics:
                self.mark(reading.device_id, metric, reading.ts, now_ms)

    def take(self, now_ms: int) -> list[BucketKey]:
        """The buckets to recompute now, sorted; each at most once."""
        wanted = set(self._dirty.due(now_ms))
        wanted |= self._fresh
        self._fresh.clear()
        return sorted(wanted)

    def give_back(self, buckets: Iterable[BucketKey]) -> None:
        """Buckets whose recomputation failed: due again at once (their due time has passed or
        comes at its usual time), retried on the next pass."""
        for device_id, metric, start in buckets:
            self._dirty.mark(device_id, metric, start)


def startup_rebuild_since_ms(now_ms: int, grace_ms: int) -> int:
    """Start of the window a starting worker rebuilds: any bucket marked before a crash and not
    yet computed ends at most `grace_ms` ago; 5 minutes more cover a slow restart."""
    return now_ms - grace_ms - MINUTE_MS - STARTUP_REBUILD_EXTRA_MS
