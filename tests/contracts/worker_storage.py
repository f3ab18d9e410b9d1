"""The contract of the worker's database port (`hub.worker.runtime.HubDatabase`), one suite for
every adapter: `WorkerStorageContract` is subclassed with a `worker_stores` fixture by
tests/unit/test_worker_storage_memory.py (`hub.storage.memory_worker.MemoryDatabase`) and by
tests/integration/test_worker_storage_postgres.py (`hub.storage.postgres.Database`).

Everything goes in and, where the port answers, comes back through the port; what only the
dashboard reads (a device's row, the rollups) the fixture's `Peek` shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pytest

from hub.rules.model import AlertTransition
from hub.storage.memory_rollups import Rollup
from hub.storage.memory_worker import DeviceRecord
from hub.storage.model import WriteResult
from hub.storage.partitions import DAY_MS, DayPartition
from hub.windows import BucketKey
from hub.worker.runtime import HubDatabase
from tests.support.readings import make_reading

MINUTE = 60_000
HOUR = 60 * MINUTE


def recent_minute() -> int:
    """The start of a minute an hour ago: in the past, never 'frozen' ahead."""
    now = int(time.time() * 1000) - 3_600_000
    return now - now % MINUTE


class Peek(Protocol):
    """What the port does not read back, read from the adapter's own records."""

    async def device(self, device_id: str) -> DeviceRecord | None: ...
    async def rollups(self, tier: str = "1m") -> dict[BucketKey, Rollup]: ...


@dataclass
class WorkerStores:
    db: HubDatabase
    peek: Peek


def transition(t0: int, device_id: str | None = "d1", **changes: Any) -> AlertTransition:
    fields: dict[str, Any] = {
        "kind": "raised",
        "device_id": device_id,
        "gateway_id": "gw-1",
        "rule": "temp.threshold",
        "severity": "warning",
        "metric": "temp",
        "value": 81.0,
        "message": "temp 81.0 above 80",
        "ts": t0,
    }
    fields.update(changes)
    return AlertTransition(**fields)


class WorkerStorageContract:
    """Subclasses provide the fixture ``worker_stores`` (a `WorkerStores` over empty stores)."""

    # -- readings and devices --------------------------------------------------------------------

    async def test_readings_land_once_whatever_is_replayed(
        self, worker_stores: WorkerStores
    ) -> None:
        db, t0 = worker_stores.db, recent_minute()
        batch = [
            make_reading("d1", t0 + 1_000, {"temp": 1.0, "running": True}),
            make_reading("d1", t0 + 1_000, {"temp": 1.0}),  # a duplicate inside the batch
            make_reading("d2", t0 + MINUTE, {"temp": 2.0}),
        ]
        assert await db.write_readings(batch) == WriteResult(rows=4, inserted=3, devices=2)
        again = [*batch, make_reading("d1", t0 + 2_000, {"temp": 3.0})]
        assert await db.write_readings(again) == WriteResult(rows=5, inserted=1, devices=2)
        assert await db.write_readings([]) == WriteResult(rows=0, inserted=0, devices=0)
        assert await db.buckets_between(t0, t0 + 2 * MINUTE) == [
            ("d1", "running", t0),
            ("d1", "temp", t0),
            ("d2", "temp", t0 + MINUTE),
        ]
        # [since, until): a reading at until is out, one minute's ms name its bucket.
        assert await db.buckets_between(t0 + 1_500, t0 + MINUTE) == [("d1", "temp", t0)]

    async def test_a_device_follows_its_newest_reading_and_only_widens(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek, t0 = worker_stores.db, worker_stores.peek, recent_minute()
        await db.write_readings([make_reading("d1", t0, {"temp": 1.0}, type="cnc")])
        await db.write_readings(
            [make_reading("d1", t0 + 5_000, {"bar": 2.0}, site="s2", gateway_id="gw-2")]
        )
        # Older, from elsewhere: widens first_seen and the metrics, moves nothing else.
        await db.write_readings(
            [make_reading("d1", t0 - 5_000, {"rpm": 3.0}, site="s3", gateway_id="gw-3")]
        )
        d = await peek.device("d1")
        assert d is not None
        assert (d.site, d.type, d.gateway_id) == ("s2", "cnc", "gw-2")
        assert (d.first_seen, d.last_seen, d.metrics) == (
            t0 - 5_000,
            t0 + 5_000,
            ("bar", "rpm", "temp"),
        )
        assert (d.state, d.state_ts) == ("unknown", None)
        assert await peek.device("nobody") is None

    # -- device state ----------------------------------------------------------------------------

    async def test_statuses_apply_in_ts_order(self, worker_stores: WorkerStores) -> None:
        db, peek, t0 = worker_stores.db, worker_stores.peek, recent_minute()
        assert await db.set_device_state("d1", "s1", "gw-1", "online", t0) is True  # new device
        assert await db.set_device_state("d1", "s1", "gw-1", "online", t0 + 1) is False
        assert await db.set_device_state("d1", "s2", "gw-2", "offline", t0 + 2) is True
        assert await db.set_device_state("d1", "s1", "gw-1", "online", t0 + 1) is False  # stale
        d = await peek.device("d1")
        assert d is not None
        assert (d.site, d.gateway_id, d.state, d.state_ts) == ("s2", "gw-2", "offline", t0 + 2)
        assert (d.type, d.first_seen, d.last_seen, d.metrics) == (None, t0, None, ())
        with pytest.raises(ValueError, match="unknown device state"):
            await db.set_device_state("d1", "s1", "gw-1", "sleeping", t0 + 3)

    async def test_a_status_from_far_ahead_does_not_hold_later_ones_back(
        self, worker_stores: WorkerStores
    ) -> None:
        db, t0 = worker_stores.db, recent_minute()
        ahead = t0 + 3 * DAY_MS
        assert await db.set_device_state("d1", "s1", "gw-1", "offline", ahead) is True
        assert await db.set_device_state("d1", "s1", "gw-1", "online", t0) is True
        assert await db.mark_presence("d1", "offline", t0 - 1) is False  # older than t0

    async def test_presence_changes_known_devices_only(self, worker_stores: WorkerStores) -> None:
        db, peek, t0 = worker_stores.db, worker_stores.peek, recent_minute()
        assert await db.mark_presence("d1", "offline", t0) is False  # unknown: left alone
        assert await peek.device("d1") is None
        await db.write_readings([make_reading("d1", t0, {"temp": 1.0})])
        assert await db.mark_presence("d1", "online", t0) is True
        assert await db.mark_presence("d1", "online", t0 + 1) is False  # unchanged
        assert await db.set_device_state("d1", "s1", "gw-1", "offline", t0 + 10) is True
        assert await db.mark_presence("d1", "online", t0 + 5) is False  # the status is newer
        assert await db.mark_presence("d1", "online", t0 + 10) is True  # as new: applies
        d = await peek.device("d1")
        assert d is not None
        assert (d.state, d.state_ts) == ("online", t0 + 10)
        with pytest.raises(ValueError, match="unknown device state"):
            await db.mark_presence("d1", "gone", t0 + 11)

    # -- rollups ---------------------------------------------------------------------------------

    async def test_recomputed_minutes_hold_the_sql_aggregates(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek, t0 = worker_stores.db, worker_stores.peek, recent_minute()
        await db.write_readings(
            [
                make_reading("d1", t0 + 30_000, {"temp": 4.0}),
                make_reading("d1", t0 + 10_000, {"temp": 1.0, "running": True}),
                make_reading("d1", t0 + 20_000, {"temp": 2.0, "running": False}),
                make_reading("d1", t0 + MINUTE, {"temp": 8.0}),
            ]
        )
        # Any ms of a minute names its bucket; repeats count once; a minute without readings
        # writes nothing.
        asked = [("d1", "temp", t0 + 59_999), ("d1", "temp", t0), ("d1", "running", t0 + 1)]
        assert await db.recompute_rollups([*asked, ("d1", "temp", t0 + 5 * MINUTE)]) == 2
        assert await db.recompute_rollups(asked) == 0  # unchanged: not rewritten
        assert await db.recompute_rollups([]) == 0
        rollups = await peek.rollups()
        assert rollups.keys() == {("d1", "temp", t0), ("d1", "running", t0)}
        temp = rollups["d1", "temp", t0]
        assert (temp.count, temp.min, temp.max, temp.last, temp.last_ts) == (
            3,
            1.0,
            4.0,
            4.0,
            t0 + 30_000,
        )
        assert temp.avg == pytest.approx(7.0 / 3, rel=1e-12)
        assert rollups["d1", "running", t0] == Rollup(2, 0.0, 1.0, 0.5, 0.0, t0 + 20_000)
        await db.write_readings([make_reading("d1", t0 + 40_000, {"temp": 2.0})])
        assert await db.recompute_rollups([("d1", "temp", t0)]) == 1
        assert (await peek.rollups())["d1", "temp", t0] == Rollup(
            4, 1.0, 4.0, 2.25, 2.0, t0 + 40_000
        )

    async def test_a_rebuild_covers_whole_minutes_and_rewrites_only_changes(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek, t0 = worker_stores.db, worker_stores.peek, recent_minute()
        await db.write_readings(
            [make_reading("d1", t0 + n * MINUTE + 30_000, {"temp": float(n)}) for n in range(4)]
            + [make_reading("d2", t0 + 2 * MINUTE + 1, {"temp": 9.0})]
        )
        # [t0 + 1:30, t0 + 2:00:001) widens to the minutes t0 + 1 and t0 + 2.
        assert await db.rebuild_rollups(t0 + MINUTE + 30_000, t0 + 2 * MINUTE + 1) == 3
        assert set(await peek.rollups()) == {
            ("d1", "temp", t0 + MINUTE),
            ("d1", "temp", t0 + 2 * MINUTE),
            ("d2", "temp", t0 + 2 * MINUTE),
        }
        assert await db.rebuild_rollups(t0, t0 + 4 * MINUTE) == 2  # the two not built yet
        assert await db.rebuild_rollups(t0, t0 + 4 * MINUTE) == 0
        await db.write_readings([make_reading("d1", t0 + MINUTE + 1, {"temp": -1.0})])
        assert await db.rebuild_rollups(t0) == 1  # up to the newest day's end: that one minute
        assert (await peek.rollups())["d1", "temp", t0 + MINUTE] == Rollup(
            2, -1.0, 1.0, 0.0, 1.0, t0 + MINUTE + 30_000
        )
        assert await db.rebuild_rollups(t0 + 10 * MINUTE, t0 + 10 * MINUTE) == 0

    async def test_hours_and_days_are_recomputed_from_the_tier_below(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek = worker_stores.db, worker_stores.peek
        day = recent_minute() - 3 * DAY_MS
        day -= day % DAY_MS
        points = {day + 30_000: 4.0, day + MINUTE + 1: 1.0, day + HOUR + 5: 2.0, day + 2: 7.0}
        await db.write_readings([make_reading("d1", ts, {"temp": v}) for ts, v in points.items()])
        await db.rebuild_rollups(day, day + DAY_MS)
        # Any ms of an hour names it; repeats count once; nothing below writes nothing.
        asked = [("d1", "temp", day + 59 * MINUTE), ("d1", "temp", day), ("d1", "temp", day + 1)]
        assert await db.recompute_tier("1h", [*asked, ("d1", "temp", day + 5 * HOUR)]) == 1
        assert await db.recompute_tier("1h", asked) == 0  # unchanged: not rewritten
        assert await db.rebuild_tier("1h", day + HOUR + 1, day + HOUR + 2) == 1  # whole hour
        assert await db.recompute_tier("1d", [("d1", "temp", day + 7 * HOUR)]) == 1
        hours, days = await peek.rollups("1h"), await peek.rollups("1d")
        first = hours["d1", "temp", day]
        assert (first.count, first.min, first.max, first.last, first.last_ts) == (
            3, 1.0, 7.0, 1.0, day + MINUTE + 1
        )  # fmt: skip
        assert first.avg == pytest.approx(4.0, rel=1e-12)
        assert hours.keys() == {("d1", "temp", day), ("d1", "temp", day + HOUR)}
        whole = days["d1", "temp", day]
        assert (whole.count, whole.min, whole.max, whole.last, whole.last_ts) == (
            4, 1.0, 7.0, 2.0, day + HOUR + 5
        )  # fmt: skip
        assert whole.avg == pytest.approx(3.5, rel=1e-12)
        # A late reading: its minute, then its hour and day again.
        await db.write_readings([make_reading("d1", day + 10 * MINUTE, {"temp": -3.0})])
        await db.recompute_rollups([("d1", "temp", day + 10 * MINUTE)])
        assert await db.recompute_tier("1h", [("d1", "temp", day + 10 * MINUTE)]) == 1
        assert await db.rebuild_tier("1d", day, day + DAY_MS) == 1
        assert (await peek.rollups("1d"))["d1", "temp", day].min == -3.0
        for bad in ("1m", "1w"):
            with pytest.raises(ValueError, match="tier"):
                await db.recompute_tier(bad, asked)

    async def test_each_tier_is_kept_for_its_own_retention(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek = worker_stores.db, worker_stores.peek
        now = recent_minute()
        today = now - now % DAY_MS
        stamps = [today - 40 * DAY_MS + 1_000, today - 5 * DAY_MS + 1_000, now]
        await db.write_readings([make_reading("d1", ts, {"temp": 1.0}) for ts in stamps])
        for ts in stamps:
            await db.recompute_rollups([("d1", "temp", ts)])
            await db.recompute_tier("1h", [("d1", "temp", ts)])
            await db.recompute_tier("1d", [("d1", "temp", ts)])
        retention = {"1m": 5, "1h": 30, "1d": 400}
        # Whole UTC days: the bucket 5 days ago at midnight is the first one kept.
        assert await db.drop_expired_rollups(now, retention) == {"1m": 1, "1h": 1, "1d": 0}
        assert await db.drop_expired_rollups(now, retention) == {"1m": 0, "1h": 0, "1d": 0}
        assert len(await peek.rollups("1m")) == 2
        assert len(await peek.rollups("1h")) == 2
        assert len(await peek.rollups("1d")) == 3

    # -- alerts ----------------------------------------------------------------------------------

    async def test_one_open_alert_per_device_and_rule_through_its_transitions(
        self, worker_stores: WorkerStores
    ) -> None:
        db, t0 = worker_stores.db, recent_minute()
        raised = await db.apply_alert(transition(t0))
        assert raised is not None
        assert (raised.state, raised.occurrences, raised.raised_at, raised.updated_at) == (
            "active", 1, t0, t0
        )  # fmt: skip
        assert (raised.acknowledged, raised.cleared_at, raised.cleared_by) == (False, None, None)
        # A replay (same ts) or a late raise changes nothing; a newer one counts.
        assert await db.apply_alert(transition(t0)) == raised
        assert await db.apply_alert(transition(t0 - 1, value=99.0)) == raised
        again = await db.apply_alert(
            transition(t0 + 10, severity="critical", value=95.0, message="m2")
        )
        assert again == replace(
            raised, occurrences=2, severity="critical", value=95.0, message="m2", updated_at=t0 + 10
        )
        # An update as new as the last applies, without counting; an older one does not.
        updated = await db.apply_alert(transition(t0 + 10, kind="updated", value=96.0))
        assert updated == replace(
            again, severity="warning", value=96.0, message="temp 81.0 above 80"
        )
        assert await db.apply_alert(transition(t0 + 5, kind="updated", value=1.0)) == updated
        cleared = await db.apply_alert(transition(t0 + 20, kind="cleared"))
        assert cleared == replace(updated, state="cleared", cleared_at=t0 + 20, updated_at=t0 + 20)
        # Nothing open any more.
        assert await db.apply_alert(transition(t0 + 30, kind="cleared")) is None
        assert await db.apply_alert(transition(t0 + 30, kind="updated")) is None
        reopened = await db.apply_alert(transition(t0 + 40))
        assert reopened is not None
        assert (reopened.id != raised.id, reopened.occurrences) == (True, 1)

    async def test_an_early_clear_keeps_the_newest_update_time(
        self, worker_stores: WorkerStores
    ) -> None:
        db, t0 = worker_stores.db, recent_minute()
        await db.apply_alert(transition(t0 + 50))
        cleared = await db.apply_alert(transition(t0 + 10, kind="cleared"))
        assert cleared is not None
        assert (cleared.state, cleared.cleared_at, cleared.updated_at) == (
            "cleared",
            t0 + 10,
            t0 + 50,
        )

    async def test_alerts_are_keyed_by_device_gateway_and_rule(
        self, worker_stores: WorkerStores
    ) -> None:
        db, t0 = worker_stores.db, recent_minute()
        rows = [
            await db.apply_alert(transition(t0)),
            await db.apply_alert(transition(t0, rule="other")),
            await db.apply_alert(transition(t0, device_id="d2")),
            await db.apply_alert(transition(t0, device_id=None, rule="gateway_offline")),
            await db.apply_alert(
                transition(t0, device_id=None, gateway_id="gw-2", rule="gateway_offline")
            ),
        ]
        ids = [r.id for r in rows if r is not None]
        assert len(set(ids)) == 5
        gateway = await db.apply_alert(
            transition(t0 + 1, device_id=None, rule="gateway_offline", kind="cleared")
        )
        assert gateway is not None
        assert (gateway.id, gateway.state) == (ids[3], "cleared")
        with pytest.raises(ValueError, match="unknown alert transition"):
            await db.apply_alert(transition(t0, kind="forgotten"))

    async def test_alerts_are_listed_newest_first(self, worker_stores: WorkerStores) -> None:
        db, t0 = worker_stores.db, recent_minute()
        assert await db.list_alerts() == []
        for n, device in enumerate(["a", "b", "c"]):
            await db.apply_alert(transition(t0 + n, device_id=device))
        await db.apply_alert(transition(t0 + 1, device_id="c", rule="r2"))  # ties b: newer id
        await db.apply_alert(transition(t0 + 9, device_id="b", kind="cleared"))
        listed = await db.list_alerts()
        assert [(a.device_id, a.rule) for a in listed] == [
            ("c", "temp.threshold"), ("c", "r2"), ("b", "temp.threshold"), ("a", "temp.threshold")
        ]  # fmt: skip
        assert [a.device_id for a in await db.list_alerts("active", limit=2)] == ["c", "c"]
        assert [a.device_id for a in await db.list_alerts("cleared")] == ["b"]
        for bad in ({"state": "open"}, {"limit": 0}, {"limit": 1001}):
            with pytest.raises(ValueError, match=r"unknown alert state|limit must be"):
                await db.list_alerts(**bad)

    # -- schema, partitions, ping ----------------------------------------------------------------

    async def test_migrations_apply_once(self, worker_stores: WorkerStores) -> None:
        db = worker_stores.db
        applied = await db.migrate()
        assert all(isinstance(name, str) for name in applied)
        assert await db.migrate() == []
        await db.ping()  # reachable: returns, raises nothing

    async def test_partitions_are_made_ahead_on_demand_and_dropped_past_retention(
        self, worker_stores: WorkerStores
    ) -> None:
        db, peek = worker_stores.db, worker_stores.peek
        now = recent_minute()
        today = DayPartition.of(now)
        names = [DayPartition(today.start_ms + n * DAY_MS).name for n in range(-1, 3)]
        # A write makes its own day's partition, which ensuring then leaves alone.
        await db.write_readings([make_reading("d1", now + 2 * DAY_MS, {"temp": 1.0})])
        assert await db.ensure_partitions(now, 2) == names[:3]
        assert await db.ensure_partitions(now, 2) == []
        old = now - 40 * DAY_MS
        await db.write_readings([make_reading("d1", old, {"temp": 5.0})])
        await db.recompute_rollups([("d1", "temp", old)])
        assert await db.drop_expired_partitions(now, 30) == [DayPartition.of(old).name]
        assert await db.drop_expired_partitions(now, 30) == []
        assert await db.buckets_between(old - DAY_MS, now) == []  # its readings went with it
        assert ("d1", "temp", old - old % MINUTE) in await peek.rollups()  # the rollups stay
        with pytest.raises(ValueError, match="must be >= 0"):
            await db.ensure_partitions(now, -1)
        with pytest.raises(ValueError, match="must be >= 1"):
            await db.drop_expired_partitions(now, 0)
