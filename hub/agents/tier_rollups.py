"""The hourly and daily rollups (`readings_1h`, `readings_1d`): kept up to date after each pass
over the minutes, rebuilt from the tier below on request, and trimmed to each tier's retention.

After the aggregator recomputes some minutes of `readings_1m`, `recompute_coarse_isolated`
recomputes the hours holding them from `readings_1m`, then the days holding those hours from
`readings_1h`. Every bucket is recomputed from the tier below, never incremented, so a replay or
a repeated pass changes nothing; a late reading comes back through its minute and corrects its
hour and day. A bucket the database cannot compute is skipped, logged and counted, like a
minute (`hub.agents.aggregate`).

`rebuild_tiers` recomputes whole tiers over a range in chunks (`iot-hub rollup rebuild`, and the
worker's start-up), reporting each chunk to a callback for progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.agents.aggregate import RollupCounters, RollupStore, rebuild_isolated, recompute_logged
from hub.storage.tiers import COARSE_TIERS, DAY_MS, TIERS, Tier, coarser_buckets, tier
from hub.windows import BucketKey

log = logging.getLogger(__name__)


class TierStore(RollupStore, Protocol):
    """What the coarse tiers need from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def recompute_tier(self, name: str, buckets: Iterable[tuple[str, str, int]]) -> int: ...

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int: ...

    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]: ...


async def recompute_coarse_isolated(
    store: TierStore,
    minutes: Sequence[BucketKey],
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
    since: Mapping[str, int] | None = None,
) -> None:
    """The hours holding ``minutes``, then the days holding those hours; with ``since``
    (`hub.storage.tiers.recomputable_since`), only the buckets of each tier from there on."""
    buckets: Sequence[BucketKey] = minutes
    for coarse in COARSE_TIERS:
        buckets = coarser_buckets(buckets, coarse)
        if since is not None:
            buckets = [b for b in buckets if b[2] >= since[coarse.name]]
        await _recompute_tier(store, coarse, buckets, counters, is_poison=is_poison)


async def _recompute_tier(
    store: TierStore,
    coarse: Tier,
    buckets: Sequence[BucketKey],
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
) -> None:
    await recompute_logged(
        lambda chunk: store.recompute_tier(coarse.name, chunk),
        buckets,
        counters,
        is_poison=is_poison,
        tier=coarse.name,
    )


@dataclass(frozen=True)
class Progress:
    """One chunk of a rebuild done: which tier, the chunk's range, chunks done of how many,
    rows written so far in this tier."""

    tier: str
    start_ms: int
    end_ms: int
    done: int
    chunks: int
    rows_written: int


# One statement per chunk: a day of minutes or hours of the tier below, a month of days.
_CHUNK_MS: Mapping[str, int] = {"1m": DAY_MS, "1h": DAY_MS, "1d": 30 * DAY_MS}


def chunks(name: str, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
    """``[since_ms, until_ms)`` widened to whole buckets of the tier, cut at chunk boundaries."""
    t = tier(name)
    width = _CHUNK_MS[name]
    start = t.bucket(since_ms)
    end = -(-until_ms // t.width_ms) * t.width_ms
    out = []
    while start < end:
        stop = min(end, start - start % width + width)
        out.append((start, stop))
        start = stop
    return out


def tiers_from(name: str) -> list[str]:
    """The tier ``name`` (or ``all``) and every coarser one, which depend on it."""
    if name == "all":
        return [t.name for t in TIERS]
    first = TIERS.index(tier(name))
    return [t.name for t in TIERS[first:]]


async def rebuild_tiers(
    store: TierStore,
    names: Sequence[str],
    since_ms: int,
    until_ms: int,
    counters: RollupCounters,
    *,
    is_poison: Callable[[Exception], bool],
    progress: Callable[[Progress], None] = lambda _: None,
) -> dict[str, int]:
    """Rebuild each tier of ``names`` (finest first) over ``[since_ms, until_ms)``; rows written
    per tier. Minutes go through `rebuild_isolated` (a minute that cannot be computed is
    skipped); an hour or a day is recomputed from the tier below."""
    written: dict[str, int] = {}
    for name in names:
        parts = chunks(name, since_ms, until_ms)
        written[name] = 0
        for done, (start, end) in enumerate(parts, 1):
            if name == "1m":
                rows = await rebuild_isolated(store, start, end, counters, is_poison=is_poison)
            else:
                rows = await store.rebuild_tier(name, start, end)
                counters.written_total += rows
            written[name] += rows
            progress(Progress(name, start, end, done, len(parts), written[name]))
    return written
