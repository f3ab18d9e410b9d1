"""Alert lifecycle against a real PostgreSQL: at most one open alert per (device or gateway,
rule), repeats counted, acknowledgement and clearing recorded."""

from __future__ import annotations

import time
from dataclasses import replace

import asyncpg
import pytest

from hub.rules.model import AlertTransition
from hub.storage.partitions import ms_to_datetime
from hub.storage.postgres import Database

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)

HOT = AlertTransition(
    kind="raised",
    device_id="cnc-01",
    gateway_id="gw-1",
    rule="cnc_spindle.spindle_temp_c.threshold",
    severity="warning",
    metric="spindle_temp_c",
    value=81.0,
    message="spindle_temp_c 81.0 above 80",
    ts=NOW,
)
GATEWAY_DOWN = AlertTransition(
    kind="raised",
    device_id=None,
    gateway_id="gw-1",
    rule="gateway_offline",
    severity="critical",
    metric=None,
    value=None,
    message="gateway gw-1 silent for 30 s",
    ts=NOW,
)


async def test_raising_twice_keeps_one_open_alert(database: Database) -> None:
    first = await database.apply_alert(HOT)
    again = await database.apply_alert(
        replace(HOT, severity="critical", value=95.0, message="hotter", ts=NOW + 1000)
    )
    assert first is not None
    assert again is not None
    assert again.id == first.id
    assert (again.occurrences, again.severity, again.value, again.message) == (
        2,
        "critical",
        95.0,
        "hotter",
    )
    assert (again.raised_at, again.updated_at) == (NOW, NOW + 1000)
    assert [a.id for a in await database.list_alerts("active")] == [first.id]


async def test_a_replayed_or_late_transition_changes_nothing(database: Database) -> None:
    await database.apply_alert(HOT)
    second = await database.apply_alert(replace(HOT, value=90.0, ts=NOW + 1000))
    assert second is not None
    assert await database.apply_alert(replace(HOT, value=90.0, ts=NOW + 1000)) == second
    assert await database.apply_alert(replace(HOT, value=85.0, ts=NOW + 500)) == second
    assert await database.apply_alert(replace(HOT, kind="updated", ts=NOW + 999)) == second
    assert second.occurrences == 2


async def test_clear_then_raise_opens_a_new_alert(database: Database) -> None:
    first = await database.apply_alert(HOT)
    cleared = await database.apply_alert(replace(HOT, kind="cleared", ts=NOW + 5000))
    assert first is not None
    assert cleared is not None
    assert (cleared.id, cleared.state, cleared.cleared_at) == (first.id, "cleared", NOW + 5000)
    assert cleared.cleared_by is None
    second = await database.apply_alert(replace(HOT, ts=NOW + 9000))
    assert second is not None
    assert second.id != first.id
    assert (second.state, second.occurrences) == ("active", 1)
    assert [a.id for a in await database.list_alerts()] == [second.id, first.id]
    assert [a.id for a in await database.list_alerts("cleared")] == [first.id]


async def test_update_and_clear_without_an_open_alert_do_nothing(
    database: Database, pg: asyncpg.Connection
) -> None:
    assert await database.apply_alert(replace(HOT, kind="updated")) is None
    assert await database.apply_alert(replace(HOT, kind="cleared")) is None
    assert await pg.fetchval("SELECT count(*) FROM alerts") == 0


async def test_update_changes_the_open_alert_without_counting_an_occurrence(
    database: Database,
) -> None:
    raised = await database.apply_alert(HOT)
    updated = await database.apply_alert(
        replace(HOT, kind="updated", severity="critical", value=99.0, ts=NOW + 1)
    )
    assert raised is not None
    assert updated is not None
    assert (updated.id, updated.severity, updated.value, updated.occurrences) == (
        raised.id,
        "critical",
        99.0,
        1,
    )


async def test_device_and_gateway_alerts_of_one_rule_are_separate(database: Database) -> None:
    device = await database.apply_alert(replace(GATEWAY_DOWN, device_id="cnc-01"))
    gateway = await database.apply_alert(GATEWAY_DOWN)
    other_gateway = await database.apply_alert(replace(GATEWAY_DOWN, gateway_id="gw-2"))
    assert device is not None
    assert gateway is not None
    assert other_gateway is not None
    assert len({device.id, gateway.id, other_gateway.id}) == 3
    cleared = await database.apply_alert(replace(GATEWAY_DOWN, kind="cleared", ts=NOW + 1))
    assert cleared is not None
    assert cleared.id == gateway.id
    assert {a.id for a in await database.list_alerts("active")} == {device.id, other_gateway.id}


async def test_acknowledge_records_who_when_and_why(
    database: Database, pg: asyncpg.Connection
) -> None:
    raised = await database.apply_alert(HOT)
    assert raised is not None
    before = int(time.time() * 1000)
    acked = await database.acknowledge_alert(raised.id, "alice", "checking coolant")
    after = int(time.time() * 1000)
    assert acked is not None
    assert (acked.acknowledged, acked.ack_by, acked.ack_comment) == (
        True,
        "alice",
        "checking coolant",
    )
    assert acked.ack_at is not None
    assert before - 1000 <= acked.ack_at <= after + 1000
    assert acked.state == "active"  # acknowledging does not clear
    # A repeat of an acknowledged alert keeps the acknowledgement.
    again = await database.apply_alert(replace(HOT, ts=NOW + 1))
    assert again is not None
    assert again.acknowledged
    assert again.occurrences == 2
    assert await database.acknowledge_alert(10**9, "alice", None) is None


async def test_clear_by_hand(database: Database) -> None:
    raised = await database.apply_alert(HOT)
    assert raised is not None
    cleared = await database.clear_alert(raised.id, "bob")
    assert cleared is not None
    assert (cleared.state, cleared.cleared_by) == ("cleared", "bob")
    assert cleared.cleared_at is not None
    # Clearing again changes nothing; the rule's own clear finds nothing open.
    assert await database.clear_alert(raised.id, "carol") == cleared
    assert await database.apply_alert(replace(HOT, kind="cleared")) is None
    assert await database.clear_alert(10**9, "bob") is None
    assert await database.get_alert(raised.id) == cleared


async def test_the_database_itself_forbids_two_open_alerts(
    database: Database, pg: asyncpg.Connection
) -> None:
    insert = (
        "INSERT INTO alerts (device_id, gateway_id, rule, severity, state, message, raised_at, "
        "updated_at, cleared_at) VALUES ($1, $2, 'r', 'warning', $3, 'm', $4, $4, $5)"
    )
    ts = ms_to_datetime(NOW)
    await pg.execute(insert, "d", None, "active", ts, None)
    await pg.execute(insert, "d", None, "cleared", ts, ts)  # closed ones do not count
    await pg.execute(insert, "d", None, "cleared", ts, ts)
    await pg.execute(insert, None, "d", "active", ts, None)  # a gateway named like the device
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg.execute(insert, "d", None, "active", ts, None)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg.execute(
            "UPDATE alerts SET state = 'active', cleared_at = NULL "
            "WHERE device_id = 'd' AND state = 'cleared'"
        )


async def test_list_alerts_validates_its_arguments(database: Database) -> None:
    with pytest.raises(ValueError, match="unknown alert state"):
        await database.list_alerts("open")
    with pytest.raises(ValueError, match="limit"):
        await database.list_alerts(limit=0)
    for n in range(3):
        await database.apply_alert(replace(HOT, rule=f"rule_{n}", ts=NOW + n))
    assert [a.rule for a in await database.list_alerts(limit=2)] == ["rule_2", "rule_1"]
