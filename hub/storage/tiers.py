"""The rollup tiers, pure: `readings_1m`, `readings_1h` and `readings_1d`, each bucket recomputed
from the tier below it (a minute from `readings`, an hour from its minutes, a day from its hours);
which buckets of a coarser tier a set of finer buckets touches; the per-tier retention setting
(`HUB_ROLLUP_RETENTION_DAYS`); and which tier a chart range reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from hub.windows import MINUTE_MS, BucketKey, bucket_start

__all__ = [
    "COARSE_TIERS",
    "DEFAULT_RETENTION",
    "ROLLUP_ROW_BUDGET",
    "TIERS",
    "Tier",
    "TierName",
    "coarser_buckets",
    "format_retention",
    "parse_retention",
    "read_tier",
    "recomputable_since",
    "retention_cutoff_ms",
    "tier",
]

TierName = Literal["1m", "1h", "1d"]
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class Tier:
    name: TierName
    width_ms: int
    table: str
    source: str  # the table each bucket is recomputed from

    def bucket(self, ts_ms: int) -> int:
        """Start of this tier's UTC bucket holding ``ts_ms``."""
        return bucket_start(ts_ms, self.width_ms)

    def rows_in(self, start: int, end: int) -> int:
        """Buckets this tier has per series in ``[start, end)``, at most."""
        return max(0, -(-(end - start) // self.width_ms))


TIERS: Final = (
    Tier("1m", MINUTE_MS, "readings_1m", "readings"),
    Tier("1h", HOUR_MS, "readings_1h", "readings_1m"),
    Tier("1d", DAY_MS, "readings_1d", "readings_1h"),
)
COARSE_TIERS: Final = TIERS[1:]  # those recomputed from another rollup tier
_BY_NAME: Final[dict[str, Tier]] = {t.name: t for t in TIERS}

# Rows of one metric a chart reads at most from a rollup tier, unless it asks for more points
# (`read_tier`): a 90-day range reads 2,160 hours, a year 365 days.
ROLLUP_ROW_BUDGET: Final = 3_000


def tier(name: str) -> Tier:
    """The tier called ``name`` (``1m``, ``1h``, ``1d``); ValueError naming them otherwise."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown rollup tier {name!r}: expected one of 1m, 1h, 1d")
    return found


def coarser_buckets(buckets: Iterable[BucketKey], coarse: Tier) -> list[BucketKey]:
    """The distinct buckets of ``coarse`` that hold the given (device, metric, ms) buckets."""
    return sorted({(d, m, coarse.bucket(ms)) for d, m, ms in buckets})


def read_tier(start: int, end: int, max_points: int) -> Tier:
    """The finest tier whose buckets over ``[start, end)`` fit the row budget: the larger of
    `ROLLUP_ROW_BUDGET` and ``max_points``; the daily one when none does."""
    budget = max(ROLLUP_ROW_BUDGET, max_points)
    for t in TIERS:
        if t.rows_in(start, end) <= budget:
            return t
    return TIERS[-1]


# -- retention -------------------------------------------------------------------------------

DEFAULT_RETENTION: Final[Mapping[TierName, int]] = {"1m": 90, "1h": 730, "1d": 3650}


def format_retention(days: Mapping[TierName, int]) -> str:
    return ",".join(f"{t.name}={days[t.name]}" for t in TIERS)


def parse_retention(text: str) -> dict[TierName, int]:
    """``1m=90,1h=730,1d=3650`` (any subset, any order; a tier left out keeps its default) as
    days per tier. ValueError with a message naming what is wrong: an unknown tier, a tier twice,
    days that are not a whole number >= 1, or a coarser tier kept for less time than a finer one
    (it could not be rebuilt from it)."""
    days: dict[TierName, int] = dict(DEFAULT_RETENTION)
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ValueError(f"{item!r} is not TIER=DAYS (e.g. 1m=90,1h=730,1d=3650)")
        t = tier(name)
        if name in seen:
            raise ValueError(f"tier {name} is given twice")
        seen.add(name)
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{name}={value!r}: days must be a whole number >= 1")
        days[t.name] = int(value)
    for finer, coarser in itertools.pairwise(TIERS):
        if days[coarser.name] < days[finer.name]:
            raise ValueError(
                f"{coarser.name}={days[coarser.name]} is shorter than "
                f"{finer.name}={days[finer.name]}: a coarser tier must be kept at least as long"
            )
    return days


def retention_cutoff_ms(now_ms: int, days: int) -> int:
    """Buckets starting before this are past a retention of ``days``: the start of the UTC day
    ``days`` days ago, so every hour and day is either wholly kept or wholly dropped (a coarser
    bucket is never recomputed from part of its rows)."""
    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    return bucket_start(now_ms, DAY_MS) - days * DAY_MS


def recomputable_since(now_ms: int, retention_days: Mapping[str, int]) -> dict[str, int]:
    """For each coarse tier, the first bucket start the tier below still holds whole: an older
    bucket recomputed after its source rows were deleted (a reading replayed from long ago)
    would be overwritten from the one minute or hour the replay brought back."""
    return {
        coarse.name: retention_cutoff_ms(now_ms, retention_days[finer.name])
        for finer, coarse in itertools.pairwise(TIERS)
    }
