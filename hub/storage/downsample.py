"""Min/max-preserving downsampling for line charts (M4), pure.

A chart `w` pixels wide can show at most four meaningful points per pixel column: the first
and last (where the line enters and leaves the column) and the minimum and maximum (the
column's vertical extent). Keeping exactly those, in time order, draws the same picture as the
full series, spikes included, from at most `4 * w` points (Jugel et al., "M4: A
Visualization-Oriented Time Series Data Aggregation", VLDB 2014).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["POINTS_PER_COLUMN", "m4"]

POINTS_PER_COLUMN = 4


def m4(
    ts: Sequence[int],
    values: Sequence[float],
    max_points: int,
    *,
    start: int | None = None,
    end: int | None = None,
) -> tuple[list[int], list[float]]:
    """At most ``max_points`` of the points (``ts`` sorted ascending), in their original order,
    always including the global minimum and maximum. Columns split ``[start, end)`` (default:
    the first to the last ts) into ``max_points // 4`` equal time spans, so points are placed by
    time like pixels, and a gap in the data stays a gap. A series that already fits is returned
    unchanged."""
    if len(ts) != len(values):
        raise ValueError(f"ts and values differ in length: {len(ts)} != {len(values)}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    n = len(ts)
    if n <= max_points:
        return list(ts), list(values)
    columns = max_points // POINTS_PER_COLUMN
    if columns == 0:  # room for 2 or 3 points: the extremes say the most
        keep = sorted({_argmin(values, 0, n), _argmax(values, 0, n)})
        return [ts[i] for i in keep], [values[i] for i in keep]
    lo = ts[0] if start is None else min(start, ts[0])
    hi = ts[-1] + 1 if end is None else max(end, ts[-1] + 1)
    span = hi - lo
    keep = []
    i = 0
    while i < n:
        column = (ts[i] - lo) * columns // span
        j = i + 1
        while j < n and (ts[j] - lo) * columns // span == column:
            j += 1
        # Indices are distinct and, sorted, restore time order inside the column.
        keep.extend(sorted({i, _argmin(values, i, j), _argmax(values, i, j), j - 1}))
        i = j
    return [ts[k] for k in keep], [values[k] for k in keep]


def _argmin(values: Sequence[float], lo: int, hi: int) -> int:
    best = lo
    for k in range(lo + 1, hi):
        if values[k] < values[best]:
            best = k
    return best


def _argmax(values: Sequence[float], lo: int, hi: int) -> int:
    best = lo
    for k in range(lo + 1, hi):
        if values[k] > values[best]:
            best = k
    return best
