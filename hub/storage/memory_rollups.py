"""The one-minute rollups in memory, computed from readings as `hub.storage.postgres` computes
`readings_1m`: per (device, metric, UTC minute) the count, min, max, avg, the last value (at the
newest ts) and its ts. A bucket is rewritten only when one of them changes, and a bucket
without readings keeps whatever rollup it had (as the SQL upserts only aggregated rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.storage.model import rollup_bucket_ms
from hub.windows import MINUTE_MS, BucketKey

__all__ = ["MemoryRollups", "Rollup", "Series", "aggregate"]

Series = Mapping[int, float]  # one (device, metric): value by ts (epoch ms), ts unique


@dataclass(frozen=True, slots=True)
class Rollup:
    """One row of `readings_1m`, timestamps as epoch ms."""

    count: int
    min: float
    max: float
    avg: float
    last: float
    last_ts: int


def aggregate(points: Iterable[tuple[int, float]]) -> Rollup | None:
    """The rollup of (ts, value) points; None when there are none."""
    ordered = sorted(points)
    if not ordered:
        return None
    values = [v for _, v in ordered]
    last_ts, last = ordered[-1]
    return Rollup(
        count=len(values),
        min=min(values),
        max=max(values),
        avg=sum(values) / len(values),
        last=last,
        last_ts=last_ts,
    )


class MemoryRollups:
    """The rollups of the series in ``readings`` (shared, read at each call, never written)."""

    def __init__(self, readings: Mapping[tuple[str, str], Series]) -> None:
        self._readings = readings
        self._rows: dict[tuple[str, str], dict[int, Rollup]] = {}

    def recompute(self, buckets: Iterable[BucketKey]) -> int:
        """The given buckets (distinct, by bucket start) from their readings; rows written."""
        written = 0
        for device_id, metric, bucket in buckets:
            series = self._readings.get((device_id, metric), {})
            end = bucket + MINUTE_MS
            found = aggregate((ts, v) for ts, v in series.items() if bucket <= ts < end)
            written += self._store((device_id, metric), bucket, found)
        return written

    def rebuild(self, start: int, end: int) -> int:
        """Every bucket with readings in ``[start, end)`` (whole minutes); rows written."""
        written = 0
        for key, series in self._readings.items():
            buckets: dict[int, list[tuple[int, float]]] = {}
            for ts, value in series.items():
                if start <= ts < end:
                    buckets.setdefault(rollup_bucket_ms(ts), []).append((ts, value))
            for bucket, points in buckets.items():
                written += self._store(key, bucket, aggregate(points))
        return written

    def _store(self, key: tuple[str, str], bucket: int, rollup: Rollup | None) -> int:
        if rollup is None:
            return 0
        rows = self._rows.setdefault(key, {})
        if rows.get(bucket) == rollup:
            return 0
        rows[bucket] = rollup
        return 1

    def of(self, device_id: str, metric: str) -> Mapping[int, Rollup]:
        """One series' rollups by bucket start."""
        return self._rows.get((device_id, metric), {})

    def all(self) -> dict[BucketKey, Rollup]:
        return {
            (device_id, metric, bucket): rollup
            for (device_id, metric), rows in self._rows.items()
            for bucket, rollup in rows.items()
        }
