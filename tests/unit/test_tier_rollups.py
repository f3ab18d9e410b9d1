"""The hourly and daily tiers' upkeep in the worker (`hub.agents.tier_rollups`,
`hub.agents.maintenance.maintain_rollups`) over fake stores: which buckets are recomputed, a
bucket that cannot be computed skipped alone, the rebuild's chunks and progress, and the
retention pass's failures logged, not raised."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import asyncpg
import pytest

from hub.agents.aggregate import RollupCounters
from hub.agents.maintenance import maintain_rollups
from hub.agents.retry import is_record_error
from hub.agents.tier_rollups import Progress, rebuild_tiers, recompute_coarse_isolated
from hub.storage.tiers import DAY_MS, HOUR_MS, recomputable_since
from hub.windows import MINUTE_MS

T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z


class TierDb:
    """Records the calls; fails any touching ``poisoned`` as an overflowing avg() would."""

    def __init__(self, poisoned: tuple[str, str, str, int] | None = None) -> None:
        self.poisoned = poisoned
        self.calls: list[tuple[object, ...]] = []

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int:
        return 0

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        self.calls.append(("rebuild", "1m", since_ms, until_ms))
        return 10

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[tuple[str, str, int]]:
        return []

    async def recompute_tier(self, name: str, buckets: Iterable[tuple[str, str, int]]) -> int:
        wanted = list(buckets)
        if self.poisoned is not None and self.poisoned[0] == name and self.poisoned[1:] in wanted:
            raise asyncpg.exceptions.NumericValueOutOfRangeError("value out of range: overflow")
        self.calls.append(("recompute", name, *wanted))
        return len(wanted)

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        self.calls.append(("rebuild", name, since_ms, until_ms))
        return 1

    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]:
        self.calls.append(("drop", dict(retention_days)))
        return {name: 0 for name in retention_days}


async def test_the_hours_then_the_days_of_the_minutes_recomputed() -> None:
    db, counters = TierDb(), RollupCounters()
    minutes = [("a", "t", T0 + 5 * MINUTE_MS), ("a", "t", T0 + 65 * MINUTE_MS), ("b", "t", T0)]
    await recompute_coarse_isolated(db, minutes, counters, is_poison=is_record_error)
    assert db.calls == [
        ("recompute", "1h", ("a", "t", T0), ("a", "t", T0 + HOUR_MS), ("b", "t", T0)),
        ("recompute", "1d", ("a", "t", T0), ("b", "t", T0)),
    ]
    assert (counters.written_total, counters.skipped_total) == (5, 0)


async def test_no_bucket_is_recomputed_once_the_tier_below_lost_its_rows() -> None:
    db = TierDb()
    minutes = [("a", "t", T0 - 100 * DAY_MS), ("a", "t", T0 - 10 * DAY_MS), ("a", "t", T0)]
    since = recomputable_since(T0 + HOUR_MS, {"1m": 30, "1h": 365, "1d": 3650})
    assert since == {"1h": T0 - 30 * DAY_MS, "1d": T0 - 365 * DAY_MS}
    await recompute_coarse_isolated(
        db, minutes, RollupCounters(), is_poison=is_record_error, since=since
    )
    assert db.calls == [
        ("recompute", "1h", ("a", "t", T0 - 10 * DAY_MS), ("a", "t", T0)),  # not 100 days ago
        ("recompute", "1d", ("a", "t", T0 - 10 * DAY_MS), ("a", "t", T0)),  # hours unchanged
    ]  # fmt: skip


async def test_an_hour_that_cannot_be_computed_is_skipped_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, counters = TierDb(poisoned=("1h", "a", "t", T0)), RollupCounters()
    minutes = [("a", "t", T0), ("b", "t", T0)]
    with caplog.at_level(logging.ERROR, logger="hub.agents.tier_rollups"):
        await recompute_coarse_isolated(db, minutes, counters, is_poison=is_record_error)
    assert ("recompute", "1h", ("b", "t", T0)) in db.calls
    assert counters.skipped_total == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "rollup_skipped"]
    assert (record.tier, record.device_id) == ("1h", "a")  # type: ignore[attr-defined]


async def test_a_rebuild_goes_tier_by_tier_reporting_each_chunk() -> None:
    db, seen = TierDb(), list[Progress]()
    written = await rebuild_tiers(
        db, ["1h", "1d"], T0 + 30 * MINUTE_MS, T0 + DAY_MS + 1, RollupCounters(),
        is_poison=is_record_error, progress=seen.append,
    )  # fmt: skip
    assert written == {"1h": 2, "1d": 1}
    assert db.calls == [
        ("rebuild", "1h", T0, T0 + DAY_MS),
        ("rebuild", "1h", T0 + DAY_MS, T0 + DAY_MS + HOUR_MS),
        ("rebuild", "1d", T0, T0 + 2 * DAY_MS),
    ]
    assert seen == [
        Progress("1h", T0, T0 + DAY_MS, 1, 2, 1),
        Progress("1h", T0 + DAY_MS, T0 + DAY_MS + HOUR_MS, 2, 2, 2),
        Progress("1d", T0, T0 + 2 * DAY_MS, 1, 1, 1),
    ]


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (asyncpg.LockNotAvailableError("lock timeout"), logging.WARNING),
        (asyncpg.InsufficientPrivilegeError("denied"), logging.ERROR),
    ],
)
async def test_the_retention_pass_logs_its_failures(
    error: Exception, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(TierDb):
        async def drop_expired_rollups(
            self, now_ms: int, retention_days: Mapping[str, int]
        ) -> dict[str, int]:
            raise error

    with caplog.at_level(logging.INFO, logger="hub.agents.maintenance"):
        assert not await maintain_rollups(Failing(), now_ms=T0, retention_days={"1m": 1})
    (record,) = [r for r in caplog.records if r.getMessage() == "rollup_retention_failed"]
    assert record.levelno == level
    db = TierDb()
    assert await maintain_rollups(db, now_ms=T0, retention_days={"1m": 90, "1h": 730})
    assert db.calls == [("drop", {"1m": 90, "1h": 730})]
