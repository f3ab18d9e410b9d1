"""How a chart's series is read, whichever store holds the readings: the rules shared by every
`ReadModel` adapter, over two primitives each adapter provides (raw readings in a range, and the
1-minute rollups in a range).

Ranges up to `RAW_MAX_SPAN_MS` (6 h) come from the raw readings, longer ones from the rollups,
each minute drawn as its minimum and maximum so that no spike disappears; a raw range denser
than `RAW_MAX_ROWS` falls back to the rollups too. The freshest minutes, not yet rolled up (the
aggregator waits for late readings), are filled in from the raw readings. Either way the result
is downsampled to at most `max_points` with every pixel column's min and max kept
(`hub.storage.downsample.m4`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal, Protocol

from hub.storage.downsample import m4
from hub.storage.web_model import Series
from hub.windows import MINUTE_MS, bucket_ceil

__all__ = [
    "MAX_SERIES_POINTS",
    "MIN_SERIES_POINTS",
    "RAW_MAX_ROWS",
    "RAW_MAX_SPAN_MS",
    "RawReader",
    "RollupReader",
    "RollupRow",
    "read_series",
    "rollup_points",
]

RAW_MAX_SPAN_MS: Final = 6 * 3_600_000
RAW_MAX_ROWS: Final = 200_000  # beyond this a raw range reads the rollups instead
MIN_SERIES_POINTS: Final = 2
MAX_SERIES_POINTS: Final = 10_000


class RollupRow(Protocol):
    """One minute of `readings_1m` as read: ``row["ts"]`` (the minute's start, epoch ms),
    ``row["min"]``, ``row["max"]``."""

    def __getitem__(self, key: str, /) -> float: ...


# (start, end, limit) -> the raw points in [start, end), oldest first, at most ``limit``.
RawReader = Callable[[int, int, int], Awaitable[tuple[list[int], list[float]]]]
# (start, end) -> the rollup minutes starting in [start, end), oldest first.
RollupReader = Callable[[int, int], Awaitable[Sequence[RollupRow]]]


def rollup_points(rows: Sequence[RollupRow]) -> tuple[list[int], list[float]]:
    """Each minute as its minimum then its maximum, both at the minute's start (one point when
    they are equal): the envelope, which is what a chart of many minutes can show."""
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
    rollups: RollupReader,
) -> Series:
    """Readings of one metric in ``[start, end)``, at most ``max_points`` (see the module
    docstring for the source). Booleans come as 0.0 and 1.0."""
    check_series_request(start, end, max_points)
    ts: list[int] | None = None
    values: list[float] = []
    source: Literal["raw", "1m"] = "raw"
    if end - start <= RAW_MAX_SPAN_MS:
        raw_ts, raw_values = await raw(start, end, RAW_MAX_ROWS + 1)
        if len(raw_ts) <= RAW_MAX_ROWS:
            ts, values = raw_ts, raw_values
    if ts is None:
        source = "1m"
        ts, values = await _rollup_series(start, end, raw, rollups)
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


async def _rollup_series(
    start: int, end: int, raw: RawReader, rollups: RollupReader
) -> tuple[list[int], list[float]]:
    # Whole minutes only: a bucket that starts before `start` would draw data from outside.
    ts, values = rollup_points(await rollups(bucket_ceil(start), end))
    # The tail the aggregator has not rolled up yet, raw, bounded so that a metric without
    # rollups at all costs at most RAW_MAX_SPAN_MS of raw rows.
    tail_start = ts[-1] + MINUTE_MS if ts else start
    tail_start = max(tail_start, end - RAW_MAX_SPAN_MS)
    if tail_start < end:
        tail_ts, tail_values = await raw(tail_start, end, RAW_MAX_ROWS)
        ts += tail_ts
        values += tail_values
    return ts, values
