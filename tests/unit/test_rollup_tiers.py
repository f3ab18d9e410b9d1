"""The rollup tiers' pure rules (`hub.storage.tiers`), the coarse-tier rebuild's chunking and the
read side's choice of tier (`hub.storage.series`), without a database."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hub.agents.tier_rollups import chunks, tiers_from
from hub.settings import HubSettings
from hub.storage.series import RollupRow, read_series
from hub.storage.tiers import (
    DAY_MS,
    HOUR_MS,
    Tier,
    coarser_buckets,
    parse_retention,
    read_tier,
    retention_cutoff_ms,
    tier,
)
from hub.windows import MINUTE_MS

T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z, the start of a UTC day


@pytest.mark.parametrize(
    ("span_ms", "max_points", "expected"),
    [
        (12 * HOUR_MS, 1000, "1m"),  # 720 minutes
        (3000 * MINUTE_MS, 1000, "1m"),  # exactly the budget of 3,000 rows
        (3000 * MINUTE_MS + 1, 1000, "1h"),
        (7 * DAY_MS, 1000, "1h"),
        (7 * DAY_MS, 10_000, "1h"),  # 10,080 minutes: more than even 10,000 points
        (6 * DAY_MS, 10_000, "1m"),  # 8,640 minutes: within max_points
        (90 * DAY_MS, 1000, "1h"),  # 2,160 hours
        (3000 * HOUR_MS + 1, 1000, "1d"),
        (365 * DAY_MS, 1000, "1d"),
        (365 * DAY_MS, 10_000, "1h"),  # 8,760 hours within max_points
        (100 * 365 * DAY_MS, 1000, "1d"),  # the coarsest when nothing fits
    ],
)
def test_the_finest_tier_within_the_row_budget(
    span_ms: int, max_points: int, expected: str
) -> None:
    assert read_tier(T0, T0 + span_ms, max_points).name == expected


def test_buckets_are_named_by_any_ms_inside_them() -> None:
    minutes = [("d", "t", T0 + 59 * MINUTE_MS), ("d", "t", T0 + 61 * MINUTE_MS), ("e", "t", T0)]
    assert coarser_buckets(minutes, tier("1h")) == [
        ("d", "t", T0), ("d", "t", T0 + HOUR_MS), ("e", "t", T0)
    ]  # fmt: skip
    assert coarser_buckets(minutes, tier("1d")) == [("d", "t", T0), ("e", "t", T0)]
    assert tier("1d").rows_in(T0, T0 + DAY_MS + 1) == 2
    with pytest.raises(ValueError, match="unknown rollup tier '1w'"):
        tier("1w")


def test_retention_is_parsed_with_defaults_and_clear_errors() -> None:
    assert parse_retention("") == {"1m": 90, "1h": 730, "1d": 3650}
    assert parse_retention(" 1d = 5000 , 1m=7") == {"1m": 7, "1h": 730, "1d": 5000}
    for text, message in [
        ("1w=3", "unknown rollup tier '1w'"),
        ("1m", "is not TIER=DAYS"),
        ("1m=0", "days must be a whole number >= 1"),
        ("1m=ten", "days must be a whole number >= 1"),
        ("1m=1,1m=2", "given twice"),
        ("1h=30", "1h=30 is shorter than 1m=90"),
        ("1d=100", "1d=100 is shorter than 1h=730"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_retention(text)


def test_the_setting_is_shown_normalised_and_refused_when_wrong() -> None:
    settings = HubSettings(rollup_retention_days="1d=4000")
    assert settings.rollup_retention_days == "1m=90,1h=730,1d=4000"
    assert settings.rollup_retention == {"1m": 90, "1h": 730, "1d": 4000}
    assert ("HUB_ROLLUP_RETENTION_DAYS", "1m=90,1h=730,1d=4000") in settings.describe()
    with pytest.raises(ValueError, match="shorter than"):
        HubSettings(rollup_retention_days="1h=1")


def test_retention_keeps_whole_utc_days() -> None:
    assert retention_cutoff_ms(T0 + 5 * HOUR_MS, 30) == T0 - 30 * DAY_MS
    with pytest.raises(ValueError, match=">= 1"):
        retention_cutoff_ms(T0, 0)


def test_a_rebuild_is_cut_into_whole_buckets_per_chunk() -> None:
    assert chunks("1h", T0 + 90 * MINUTE_MS, T0 + DAY_MS + 1) == [
        (T0 + HOUR_MS, T0 + DAY_MS), (T0 + DAY_MS, T0 + DAY_MS + HOUR_MS)
    ]  # fmt: skip
    # 30-day chunks counted from the epoch: T0 is day 20,784, so one ends 6 days later.
    assert chunks("1d", T0 - DAY_MS, T0 + 40 * DAY_MS) == [
        (T0 - DAY_MS, T0 + 6 * DAY_MS), (T0 + 6 * DAY_MS, T0 + 36 * DAY_MS),
        (T0 + 36 * DAY_MS, T0 + 40 * DAY_MS),
    ]  # fmt: skip
    assert chunks("1m", T0, T0) == []
    assert tiers_from("all") == ["1m", "1h", "1d"]
    assert tiers_from("1h") == ["1h", "1d"]


class Store:
    """Rows per tier, recording what each read asked for."""

    def __init__(self, rows: dict[str, list[tuple[int, float]]]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, int, int]] = []

    async def raw(self, lo: int, hi: int, limit: int) -> tuple[list[int], list[float]]:
        self.asked.append(("raw", lo, hi))
        points = [(t, v) for t, v in self.rows.get("raw", []) if lo <= t < hi][:limit]
        return [t for t, _ in points], [v for _, v in points]

    async def tier(self, t: Tier, lo: int, hi: int) -> Sequence[RollupRow]:
        self.asked.append((t.name, lo, hi))
        return [
            {"ts": ts, "min": v, "max": v + 1}
            for ts, v in self.rows.get(t.name, [])
            if lo <= ts < hi
        ]


async def test_a_year_reads_whole_days_then_the_open_day_finer() -> None:
    end = T0 + 10 * HOUR_MS + 30 * MINUTE_MS
    start = end - 365 * DAY_MS
    store = Store(
        {
            "1d": [(T0 - n * DAY_MS, float(n)) for n in range(364, 0, -1)],
            "1h": [(T0 + n * HOUR_MS, 100.0) for n in range(10)],
            "1m": [(T0 + 10 * HOUR_MS + n * MINUTE_MS, 200.0) for n in range(20)],
            "raw": [(T0 + 10 * HOUR_MS + 25 * MINUTE_MS, 300.0)],
        }
    )
    series = await read_series("d", "t", start, end, 1000, raw=store.raw, rollups=store.tier)
    assert series.source == "1d"
    assert store.asked == [
        ("1d", start - start % DAY_MS + DAY_MS, T0),  # whole days only
        ("1h", T0, T0 + 10 * HOUR_MS),  # today's whole hours
        ("1m", T0 + 10 * HOUR_MS, T0 + 10 * HOUR_MS + 30 * MINUTE_MS),
        ("raw", T0 + 10 * HOUR_MS + 20 * MINUTE_MS, end),  # what no minute holds yet
    ]
    assert series.values[-1] == 300.0
    assert len(series.ts) == 2 * 364 + 2 * 10 + 2 * 20 + 1


async def test_a_tier_without_rows_costs_a_bounded_read_of_the_finer_one() -> None:
    end = T0
    store = Store({})
    series = await read_series(
        "d", "t", end - 365 * DAY_MS, end, 1000, raw=store.raw, rollups=store.tier
    )
    assert (series.source, series.ts) == ("1d", [])
    assert [(name, hi - lo) for name, lo, hi in store.asked] == [
        ("1d", 365 * DAY_MS),
        ("1h", 3000 * HOUR_MS),  # ROLLUP_ROW_BUDGET hours
        ("1m", 3000 * MINUTE_MS),
        ("raw", 6 * HOUR_MS),
    ]
