"""How a chart's series is read, whichever store holds the readings: the rules shared by every
`ReadModel` adapter, over two primitives each adapter provides (raw readings in a range, and one
rollup tier's rows in a range).

Ranges up to `RAW_MAX_SPAN_MS` (6 h) come from the raw readings; longer ones from the finest
rollup tier (`hub.storage.tiers.read_tier`: 1 minute, 1 hour or 1 day) whose buckets over the
range fit the larger of `ROLLUP_ROW_BUDGET` (3,000) and ``max_points``, so a year reads at most a
few thousand rows per metric. Each bucket is drawn as its minimum and maximum, so that no spike
disappears; a raw range denser than `RAW_MAX_ROWS` falls back to the rollups too. A tier gives
only its whole buckets; the rest of the range at the end (the bucket still open, what the
aggregator has not rolled up yet, a tier not rebuilt yet) is filled in from the next finer
tier, down to the raw readings, each step bounded. Either way the result is downsampled to at
most `max_points` with every pixel column's min and max kept (`hub.storage.downsample.m4`), and
`Series.source` names the tier chosen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from hub.storage.downsample import m4
from hub.storage.tiers import ROLLUP_ROW_BUDGET, TIERS, Tier, read_tier
from hub.storage.web_model import Series, SeriesSource
from hub.windows import bucket_ceil, bucket_start

__all__ = [
    "MAX_SERIES_POINTS",
    "MIN_SERIES_POINTS",
    "RAW_MAX_ROWS",
    "RAW_MAX_SPAN_MS",
    "RawReader",
    "RollupReader",
    "RollupRow",
    "TierReader",
    "read_series",
    "rollup_points",
]

RAW_MAX_SPAN_MS: Final = 6 * 3_600_000
RAW_MAX_ROWS: Final = 200_000  # beyond this a raw range reads the rollups instead
MIN_SERIES_POINTS: Final = 2
MAX_SERIES_POINTS: Final = 10_000


class RollupRow(Protocol):
    """One bucket of a rollup tier as read: ``row["ts"]`` (the bucket's start, epoch ms),
    ``row["min"]``, ``row["max"]``."""

    def __getitem__(self, key: str, /) -> float: ...


# (start, end, limit) -> the raw points in [start, end), oldest first, at most ``limit``.
RawReader = Callable[[int, int, int], Awaitable[tuple[list[int], list[float]]]]
# (start, end) -> one tier's buckets starting in [start, end), oldest first.
RollupReader = Callable[[int, int], Awaitable[Sequence[RollupRow]]]
# (tier, start, end) -> that tier's buckets starting in [start, end), oldest first.
TierReader = Callable[[Tier, int, int], Awaitable[Sequence[RollupRow]]]


def rollup_points(rows: Sequence[RollupRow]) -> tuple[list[int], list[float]]:
    """Each bucket as its minimum then its maximum, both at the bucket's start (one point when
    they are equal): the envelope, which is what a chart of many buckets can show."""
    ts: list[int] = []
    values: list[float] = []
    for row in rows:
        ts.append(int(row["ts"]))
        values.append(row["min"])
        if row["max"] != row["min"]:
            ts.append(int(row["ts"]))
            values.append(row["max"])
    return ts, values


def check_series_request(start: int, end: int, max_points: int) -> None:
    if start >= end:
        raise ValueError(f"start must be before end, got start={start} end={end}")
    if not MIN_SERIES_POINTS <= max_points <= MAX_SERIES_POINTS:
        raise ValueError(
            f"max_points must be within {MIN_SERIES_POINTS}..{MAX_SERIES_POINTS}, got {max_points}"
        )


async def read_series(
    device_id: str,
    metric: str,
    start: int,
    end: int,
    max_points: int,
    *,
    raw: RawReader,
    rollups: TierReader,
) -> Series:
    """Readings of one metric in ``[start, end)``, at most ``max_points`` (see the module
    docstring for the source). Booleans come as 0.0 and 1.0."""
    check_series_request(start, end, max_points)
    ts: list[int] | None = None
    values: list[float] = []
    source: SeriesSource = "raw"
    if end - start <= RAW_MAX_SPAN_MS:
        raw_ts, raw_values = await raw(start, end, RAW_MAX_ROWS + 1)
        if len(raw_ts) <= RAW_MAX_ROWS:
            ts, values = raw_ts, raw_values
    if ts is None:
        chosen = read_tier(start, end, max_points)
        source = chosen.name
        ts, values = await _tier_series(TIERS.index(chosen), start, end, raw, rollups)
    out_ts, out_values = m4(ts, values, max_points, start=start, end=end)
    return Series(
        device_id=device_id,
        metric=metric,
        source=source,
        start=start,
        end=end,
        ts=out_ts,
        values=out_values,
        downsampled=len(out_ts) < len(ts),
    )


async def _tier_series(
    level: int, start: int, end: int, raw: RawReader, rollups: TierReader
) -> tuple[list[int], list[float]]:
    """Tier ``TIERS[level]`` over the range, then the tail it does not hold from the finer
    tiers, each bounded to what that tier may read (`ROLLUP_ROW_BUDGET` buckets; raw,
    `RAW_MAX_SPAN_MS`), so a tier without rows costs a bounded read, never a scan."""
    t = TIERS[level]
    # Whole buckets only: one that starts before `start` would draw data from outside, and the
    # one still open at `end` (today, this hour) is read finer, so its newest readings show.
    rows = await rollups(t, bucket_ceil(start, t.width_ms), bucket_start(end, t.width_ms))
    ts, values = rollup_points(rows)
    tail_start = ts[-1] + t.width_ms if ts else start
    if level == 0:
        tail_start = max(tail_start, end - RAW_MAX_SPAN_MS)
        if tail_start < end:
            tail_ts, tail_values = await raw(tail_start, end, RAW_MAX_ROWS)
            ts += tail_ts
            values += tail_values
        return ts, values
    tail_start = max(tail_start, end - ROLLUP_ROW_BUDGET * TIERS[level - 1].width_ms)
    if tail_start < end:
        tail_ts, tail_values = await _tier_series(level - 1, tail_start, end, raw, rollups)
        ts += tail_ts
        values += tail_values
    return ts, values
