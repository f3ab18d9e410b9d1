"""The contract of the shelving and maintenance-window store (`hub.alarms.ports.AlarmStore`),
one suite for every adapter: `AlarmStorageContract` is subclassed with a `stores` fixture by
tests/unit/test_alarm_storage_memory.py and tests/integration/test_alarm_storage_postgres.py.

Alerts and devices are arranged through the calls the worker makes (`Feed`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from hub.alarms.ports import AlarmStore, DuplicateNameError
from hub.alarms.suppression import AlarmSuppression
from hub.alarms.windows import DeviceRef, Once, Scope, Weekly, WindowSpec
from hub.rules.model import AlertTransition
from hub.storage.model import AlertRow, WriteResult
from protocol import NormalisedReading
from tests.support.readings import make_reading

MINUTE = 60_000
HOUR = 60 * MINUTE


def now_ms() -> int:
    return int(time.time() * 1000)


class Feed(Protocol):
    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult: ...
    async def apply_alert(self, t: AlertTransition) -> AlertRow | None: ...


@dataclass
class Stores:
    feed: Feed
    alarms: AlarmStore


def transition(device_id: str | None, kind: str = "raised", **changes: Any) -> AlertTransition:
    fields: dict[str, Any] = {
        "kind": kind,
        "device_id": device_id,
        "gateway_id": "gw-1",
        "rule": "temp.threshold",
        "severity": "warning",
        "metric": "temp",
        "value": 81.0,
        "message": "temp 81.0 above 80",
        "ts": now_ms() - 10 * MINUTE,
    }
    fields.update(changes)
    return AlertTransition(**fields)


def spec(name: str = "overhaul", **changes: Any) -> WindowSpec:
    fields: dict[str, Any] = {
        "name": name,
        "suppress": "alerts",
        "schedule": Once(now_ms() - HOUR, now_ms() + HOUR),
        "scope": Scope(sites=("plant-a",)),
        "comment": "line 3",
    }
    fields.update(changes)
    return WindowSpec(**fields)


async def raised(stores: Stores, device_id: str | None = "d1", **changes: Any) -> AlertRow:
    row = await stores.feed.apply_alert(transition(device_id, **changes))
    assert row is not None
    return row


class AlarmStorageContract:
    @pytest.fixture
    def stores(self) -> Stores:
        raise NotImplementedError  # each adapter's test module provides it

    # -- shelving ------------------------------------------------------------------------------

    async def test_shelve_sets_who_why_and_until(self, stores: Stores) -> None:
        alert = await raised(stores)
        until = now_ms() + 2 * HOUR
        before = now_ms()
        row = await stores.alarms.shelve_alert(alert.id, "olga", "pump swap", until)
        assert row is not None
        assert (row.shelved_by, row.shelve_reason, row.shelved_until) == (
            "olga",
            "pump swap",
            until,
        )
        assert row.shelved_at is not None
        assert before - 1000 <= row.shelved_at <= now_ms() + 1000
        assert row.shelved(now_ms())
        assert await stores.alarms.get_alert(alert.id) == row

    async def test_shelving_an_unknown_alert_gives_none(self, stores: Stores) -> None:
        assert await stores.alarms.shelve_alert(999_999, "olga", "x", now_ms() + HOUR) is None
        assert await stores.alarms.unshelve_alert(999_999) is None
        assert await stores.alarms.get_alert(999_999) is None

    async def test_a_shelved_alert_still_changes_state(self, stores: Stores) -> None:
        alert = await raised(stores)
        await stores.alarms.shelve_alert(alert.id, "olga", "known", now_ms() + HOUR)
        updated = await stores.feed.apply_alert(
            transition("d1", "updated", severity="critical", ts=now_ms() - MINUTE)
        )
        assert updated is not None
        assert updated.severity == "critical"
        assert updated.shelved(now_ms())
        cleared = await stores.feed.apply_alert(transition("d1", "cleared", ts=now_ms()))
        assert cleared is not None
        assert cleared.state == "cleared"
        assert cleared.shelved_by == "olga"

    async def test_the_next_alert_of_a_shelved_alarm_starts_shelved(self, stores: Stores) -> None:
        first = await raised(stores)
        until = now_ms() + HOUR
        await stores.alarms.shelve_alert(first.id, "olga", "chatters", until)
        await stores.feed.apply_alert(transition("d1", "cleared", ts=now_ms() - 5 * MINUTE))
        again = await raised(stores, ts=now_ms() - MINUTE)
        assert again.id != first.id
        assert (again.shelved_by, again.shelved_until, again.shelve_reason) == (
            "olga",
            until,
            "chatters",
        )
        other = await raised(stores, "d2")  # another device's alarm: not shelved
        assert other.shelved_until is None

    async def test_an_expired_shelf_is_not_carried_over(self, stores: Stores) -> None:
        first = await raised(stores)
        await stores.alarms.shelve_alert(first.id, "olga", "brief", now_ms() - 1)
        assert not (await stores.alarms.get_alert(first.id) or first).shelved(now_ms())
        await stores.feed.apply_alert(transition("d1", "cleared", ts=now_ms() - 5 * MINUTE))
        again = await raised(stores, ts=now_ms() - MINUTE)
        assert again.shelved_until is None

    async def test_unshelve_ends_the_alarms_shelf(self, stores: Stores) -> None:
        first = await raised(stores)
        await stores.alarms.shelve_alert(first.id, "olga", "x", now_ms() + HOUR)
        await stores.feed.apply_alert(transition("d1", "cleared", ts=now_ms() - 5 * MINUTE))
        second = await raised(stores, ts=now_ms() - MINUTE)
        row = await stores.alarms.unshelve_alert(second.id)
        assert row is not None
        assert (row.shelved_by, row.shelved_until, row.shelve_reason, row.shelved_at) == (
            None,
            None,
            None,
            None,
        )
        old = await stores.alarms.get_alert(first.id)
        assert old is not None
        assert old.shelved_until is None
        await stores.feed.apply_alert(transition("d1", "cleared", ts=now_ms() - 30_000))
        third = await raised(stores, ts=now_ms())
        assert third.shelved_until is None

    # -- devices -------------------------------------------------------------------------------

    async def test_device_ref_is_the_device_as_last_seen(self, stores: Stores) -> None:
        reading = make_reading("d1", now_ms(), {"temp": 1.0}, site="plant-a", type="pump")
        await stores.feed.write_readings([reading])
        assert await stores.alarms.device_ref("d1") == DeviceRef("d1", "gw-1", "plant-a", "pump")
        assert await stores.alarms.device_ref("nobody") is None

    # -- windows -------------------------------------------------------------------------------

    async def test_windows_are_created_read_updated_and_deleted(self, stores: Stores) -> None:
        first = spec()
        created = await stores.alarms.create_window(first, "ada")
        assert created.spec == first
        assert created.created_by == created.updated_by == "ada"
        assert await stores.alarms.window(created.id) == created
        weekly = spec(
            "overhaul",
            suppress="notifications",
            schedule=Weekly((0, 4), "22:00", 480, "Europe/Berlin"),
            scope=Scope(gateways=("gw-1",), devices=("d1", "d2")),
            comment=None,
        )
        updated = await stores.alarms.update_window(created.id, weekly, "bob")
        assert updated is not None
        assert updated.spec == weekly
        assert (updated.created_by, updated.updated_by) == ("ada", "bob")
        assert updated.updated_at >= created.updated_at
        assert await stores.alarms.windows() == [updated]
        assert await stores.alarms.delete_window(created.id) == updated
        assert await stores.alarms.windows() == []
        assert await stores.alarms.window(created.id) is None
        assert await stores.alarms.delete_window(created.id) is None
        assert await stores.alarms.update_window(created.id, weekly, "bob") is None

    async def test_windows_are_listed_by_name(self, stores: Stores) -> None:
        for name in ("b", "c", "a"):
            await stores.alarms.create_window(spec(name), "ada")
        assert [w.name for w in await stores.alarms.windows()] == ["a", "b", "c"]

    async def test_a_window_name_is_unique(self, stores: Stores) -> None:
        first = await stores.alarms.create_window(spec("one"), "ada")
        second = await stores.alarms.create_window(spec("two"), "ada")
        with pytest.raises(DuplicateNameError, match="'one'"):
            await stores.alarms.create_window(spec("one"), "ada")
        with pytest.raises(DuplicateNameError, match="'one'"):
            await stores.alarms.update_window(second.id, spec("one"), "ada")
        assert await stores.alarms.update_window(first.id, spec("one"), "bob") is not None
        assert [w.name for w in await stores.alarms.windows()] == ["one", "two"]

    # -- suppression ---------------------------------------------------------------------------

    async def test_suppression_names_the_shelf_or_the_window(self, stores: Stores) -> None:
        await stores.feed.write_readings(
            [make_reading("d1", now_ms(), {"temp": 1.0}, site="plant-a")]
        )
        suppression = AlarmSuppression(stores.alarms)
        alert = await raised(stores)
        now = now_ms()
        assert await suppression.suppressed_because(alert.id, "d1", "gw-1", now) is None
        until = now + HOUR
        await stores.alarms.shelve_alert(alert.id, "olga", "pump swap", until)
        because = await suppression.suppressed_because(alert.id, "d1", "gw-1", now)
        assert because is not None
        assert because.startswith("shelved by olga until 20")
        assert because.endswith(": pump swap")
        assert await suppression.suppressed_because(alert.id, "d1", "gw-1", until) is None
        await stores.alarms.unshelve_alert(alert.id)
        await stores.alarms.create_window(spec("Line 3", suppress="notifications"), "ada")
        assert (
            await suppression.suppressed_because(alert.id, "d1", "gw-1", now)
            == "maintenance window 'Line 3'"
        )
        gateway_alert = await raised(stores, None, rule="gateway_offline")
        assert await suppression.suppressed_because(gateway_alert.id, None, "gw-1", now) is None
        assert await suppression.suppressed_because(alert.id, "d1", "gw-1", now + 2 * HOUR) is None

    async def test_shelves_ended_in_a_span(self, stores: Stores) -> None:
        now = now_ms()
        a, b, c = [await raised(stores, f"d{i}") for i in range(3)]
        await stores.alarms.shelve_alert(a.id, "olga", "x", now - 2000)
        await stores.alarms.shelve_alert(b.id, "olga", "x", now - 1000)
        await stores.alarms.shelve_alert(c.id, "olga", "x", now + HOUR)
        ended = await stores.alarms.shelves_ended(now - 2000, now)
        assert [r.id for r in ended] == [b.id]
        assert [r.id for r in await stores.alarms.shelves_ended(now - 5000, now)] == [a.id, b.id]
        assert await stores.alarms.shelves_ended(now, now + 1000) == []
