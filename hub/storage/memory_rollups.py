"""The rollups in memory, computed as `hub.storage.postgres` computes them: `readings_1m` from the
readings, per (device, metric, UTC minute) the count, min, max, avg, the last value (at the
newest ts) and its ts; `readings_1h` and `readings_1d` from the tier below (`MemoryTier`: counts
summed, avg weighted by count, last at the newest last_ts). A bucket is rewritten only when one
of them changes, and a bucket without rows below keeps whatever rollup it had (as the SQL
upserts only aggregated rows); retention deletes whole buckets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hub.storage.model import rollup_bucket_ms
from hub.storage.tiers import Tier
from hub.windows import MINUTE_MS, BucketKey

__all__ = ["MemoryRollups", "MemoryTier", "Rollup", "Series", "TierRows", "aggregate", "combine"]

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


def combine(rows: Iterable[Rollup]) -> Rollup | None:
    """The rollup of a coarser bucket from its finer ones; None when there are none."""
    items = list(rows)
    if not items:
        return None
    count = sum(r.count for r in items)
    newest = max(items, key=lambda r: r.last_ts)
    return Rollup(
        count=count,
        min=min(r.min for r in items),
        max=max(r.max for r in items),
        avg=sum(r.avg * r.count for r in items) / count,
        last=newest.last,
        last_ts=newest.last_ts,
    )


class TierRows:
    """One tier's rows by series and bucket start."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[int, Rollup]] = {}

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

    def series(self) -> list[tuple[str, str]]:
        return list(self._rows)

    def all(self) -> dict[BucketKey, Rollup]:
        return {
            (device_id, metric, bucket): rollup
            for (device_id, metric), rows in self._rows.items()
            for bucket, rollup in rows.items()
        }

    def drop_before(self, cutoff: int) -> int:
        """Delete the buckets starting before ``cutoff``; how many."""
        dropped = 0
        for rows in self._rows.values():
            old = [bucket for bucket in rows if bucket < cutoff]
            for bucket in old:
                del rows[bucket]
            dropped += len(old)
        return dropped


class MemoryRollups(TierRows):
    """The rollups of the series in ``readings`` (shared, read at each call, never written)."""

    def __init__(self, readings: Mapping[tuple[str, str], Series]) -> None:
        super().__init__()
        self._readings = readings

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


class MemoryTier(TierRows):
    """The hourly or daily tier, recomputed from ``source`` (the tier below)."""

    def __init__(self, tier: Tier, source: TierRows) -> None:
        super().__init__()
        self.tier = tier
        self._source = source

    def recompute(self, buckets: Iterable[BucketKey]) -> int:
        """The given buckets (distinct, by bucket start) from the tier below; rows written."""
        written = 0
        for device_id, metric, bucket in buckets:
            end = bucket + self.tier.width_ms
            rows = self._source.of(device_id, metric)
            found = combine(r for b, r in rows.items() if bucket <= b < end)
            written += self._store((device_id, metric), bucket, found)
        return written

    def rebuild(self, start: int, end: int) -> int:
        """Every bucket with rows below in ``[start, end)`` (whole buckets); rows written."""
        wanted = {
            (device_id, metric, self.tier.bucket(b))
            for device_id, metric in self._source.series()
            for b in self._source.of(device_id, metric)
            if start <= b < end
        }
        return self.recompute(sorted(wanted))
