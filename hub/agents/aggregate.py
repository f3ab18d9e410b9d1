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

A bucket the database cannot compute (rows stored before the hub bounded values, whose sum
overflows double precision) must not stop the worker nor hold up the others: both paths run
under `isolate_poison`, and such a bucket or minute is skipped, logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from hub.agents.poison import describe_error, isolate_poison
from hub.windows import MINUTE_MS, BucketKey, DirtyBuckets, bucket_start
from protocol import NormalisedReading

log = logging.getLogger(__name__)

STARTUP_REBUILD_EXTRA_MS: Final = 5 * MINUTE_MS


class RollupStore(Protocol):
    """What aggregation needs from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int: ...

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int: ...

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[BucketKey]: ...


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
        # A batch holds hundreds of readings of each device and minute: the metrics of each
        # (device, minute) are gathered first, and each bucket marked once.
        touched: dict[tuple[str, int], set[str]] = {}
        for reading in readings:
            key = (reading.device_id, bucket_start(reading.ts))
            metrics = touched.get(key)
            if metrics is None:
                touched[key] = set(reading.metrics)
            else:
                metrics.update(reading.metrics)
        for (device_id, start), metrics in touched.items():
            for metric in metrics:
                self.mark(device_id, metric, start, now_ms)

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


@dataclass
class RollupCounters:
    written_total: int = 0
    skipped_total: int = 0  # buckets the database could not compute


async def recompute_isolated(
    store: RollupStore,
    buckets: Sequence[BucketKey],
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
) -> None:
    """Recompute `buckets`; one that fails alone is skipped, logged and counted. Any other
    error propagates (the caller gives the buckets back for the next pass)."""
    await recompute_logged(store.recompute_rollups, buckets, counters, is_poison=is_poison)


async def recompute_logged(
    recompute_chunk: Callable[[Sequence[BucketKey]], Awaitable[int]],
    buckets: Sequence[BucketKey],
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
    tier: str | None = None,
) -> None:
    """`recompute_chunk` over `buckets`, poison isolated: each bucket that fails alone is
    skipped, counted and logged (with its `tier`, for the hourly and daily ones)."""

    async def recompute(chunk: Sequence[BucketKey]) -> None:
        counters.written_total += await recompute_chunk(chunk)

    for (device_id, metric, start), exc in await isolate_poison(
        buckets, recompute, is_poison=is_poison
    ):
        counters.skipped_total += 1
        where = {"tier": tier} if tier is not None else {}
        log.error(
            "rollup_skipped",
            extra={
                **where,
                "device_id": device_id,
                "metric": metric,
                "bucket_ms": start,
                "error": describe_error(exc),
            },
        )


async def rebuild_isolated(
    store: RollupStore,
    since_ms: int,
    until_ms: int,
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
) -> int:
    """Rebuild every bucket in the whole minutes of `[since_ms, until_ms)`, in one statement
    per day unless some minute fails: then that minute's buckets are recomputed one device and
    metric at a time (`recompute_isolated`), so only the bucket that cannot be computed is
    skipped. Returns the rows written."""
    # A range, not a list: slicing it for the bisection costs nothing, even over years.
    minutes = range(bucket_start(since_ms), until_ms, MINUTE_MS)
    before = counters.written_total

    async def rebuild(chunk: Sequence[int]) -> None:
        counters.written_total += await store.rebuild_rollups(chunk[0], chunk[-1] + MINUTE_MS)

    for start, _ in await isolate_poison(minutes, rebuild, is_poison=is_poison):
        buckets = await store.buckets_between(start, start + MINUTE_MS)
        await recompute_isolated(store, buckets, counters, is_poison=is_poison)
    return counters.written_total - before
