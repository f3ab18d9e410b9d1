"""The device cards' sparklines: which metric, its points in a small SVG box, and the
per-device buffers of recent values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hub.metadata import headline_metric
from hub.web.views.numbers import is_flag
from hub.windows import MINUTE_MS

SPARK_WIDTH: Final = 120
SPARK_HEIGHT: Final = 28
SPARK_WINDOW_MS: Final = 30 * MINUTE_MS
SPARK_POINTS: Final = 60  # one per 30 s over the window


def spark_metric(
    device_type: str | None, metrics: Sequence[str], latest: dict[str, float | bool]
) -> str | None:
    """The metric a device's sparkline draws: the type's chosen one, else its first metric that
    is not a true/false flag."""
    chosen = headline_metric(device_type)
    if chosen is not None and chosen in metrics:
        return chosen
    for metric in metrics:
        if not is_flag(device_type, metric, latest.get(metric)):
            return metric
    return None


def spark_points(
    ts: Sequence[int],
    values: Sequence[float],
    *,
    end: int,
    window_ms: int = SPARK_WINDOW_MS,
    width: int = SPARK_WIDTH,
    height: int = SPARK_HEIGHT,
) -> str:
    """SVG polyline `points` for the values within ``[end - window_ms, end]``: x by time,
    y scaled to the window's own min..max with a 2-unit margin (a flat line sits mid-height)."""
    start = end - window_ms
    pairs = [(t, v) for t, v in zip(ts, values, strict=True) if start <= t <= end]
    if not pairs:
        return ""
    lo = min(v for _, v in pairs)
    hi = max(v for _, v in pairs)
    margin = 2.0
    usable = height - 2 * margin
    coords = []
    for t, v in pairs:
        x = (t - start) * width / window_ms
        y = height / 2 if hi == lo else margin + (hi - v) * usable / (hi - lo)
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


class SparkBuffer:
    """The last SPARK_WINDOW_MS of one metric at about SPARK_POINTS resolution: history from the
    database, then live readings folded into the same buckets (the last value in each)."""

    def __init__(self, window_ms: int = SPARK_WINDOW_MS, points: int = SPARK_POINTS) -> None:
        self.window_ms = window_ms
        self.bucket_ms = max(1, window_ms // points)
        self._buckets: dict[int, tuple[int, float]] = {}

    def add(self, ts: int, value: float) -> None:
        bucket = ts // self.bucket_ms
        held = self._buckets.get(bucket)
        if held is None or ts >= held[0]:
            self._buckets[bucket] = (ts, value)

    def extend(self, ts: Sequence[int], values: Sequence[float]) -> None:
        for t, v in zip(ts, values, strict=True):
            self.add(t, v)

    def points(self, now_ms: int) -> str:
        oldest = (now_ms - self.window_ms) // self.bucket_ms
        for bucket in [b for b in self._buckets if b < oldest]:
            del self._buckets[bucket]
        ordered = [self._buckets[b] for b in sorted(self._buckets)]
        return spark_points(
            [t for t, _ in ordered], [v for _, v in ordered], end=now_ms, window_ms=self.window_ms
        )
