"""The contract of the web process's storage ports (`hub.storage.web_ports`), one suite for every
adapter: `WebStorageContract` is subclassed with a `stores` fixture by
tests/unit/test_web_storage_memory.py (the in-memory adapters) and by
tests/integration/test_web_storage_postgres.py (PostgreSQL and Redis).

What a test arranges goes in through the calls the hub's worker makes (`Feed`), so the suite
says what the dashboard reads back from what the worker wrote.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from hub.rules.model import AlertTransition
from hub.storage.audit_model import Actor, AuditEvent, AuditFilter
from hub.storage.model import AlertRow, WriteResult
from hub.storage.redis_values import GatewayHealth
from hub.storage.web_model import AlertFilter, DeviceFilter, Principal
from hub.storage.web_ports import Accounts, AlertWrites, AuditTrail, ReadModel
from protocol import NormalisedReading
from tests.support.readings import make_edge_metrics, make_reading
from tests.support.waiting import async_wait_until

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
ACTOR = Actor("contract", "pytest")
PASSWORD = "correct horse battery"


def now_ms() -> int:
    return int(time.time() * 1000)


class Feed(Protocol):
    """What the worker writes, as `Database` and `LiveStore` (or `MemoryHub`) take it."""

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult: ...
    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool: ...
    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int: ...
    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int: ...
    async def apply_alert(self, t: AlertTransition) -> AlertRow | None: ...
    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool: ...
    async def set_gateway_state(self, health: GatewayHealth) -> bool: ...


@dataclass
class Stores:
    feed: Feed
    reads: ReadModel
    alerts: AlertWrites
    accounts: Accounts
    audit: AuditTrail


def transition(device_id: str, rule: str = "temp.threshold", **changes: Any) -> AlertTransition:
    fields: dict[str, Any] = {
        "kind": "raised",
        "device_id": device_id,
        "gateway_id": "gw-1",
        "rule": rule,
        "severity": "warning",
        "metric": "temp",
        "value": 81.0,
        "message": "temp 81.0 above 80",
        "ts": now_ms() - 10 * MINUTE,
    }
    fields.update(changes)
    return AlertTransition(**fields)


async def raise_alert(stores: Stores, device_id: str, **changes: Any) -> AlertRow:
    row = await stores.feed.apply_alert(transition(device_id, **changes))
    assert row is not None
    return row


async def ingest(stores: Stores, readings: list[NormalisedReading]) -> None:
    await stores.feed.write_readings(readings)
    await stores.feed.update_latest(readings)


class WebStorageContract:
    """Subclasses provide the fixture ``stores`` (a `Stores` of empty stores)."""

    # -- devices ---------------------------------------------------------------------------------

    async def test_devices_filtered_and_paged_with_latest_values_and_alerts(
        self, stores: Stores
    ) -> None:
        t = now_ms()
        await ingest(
            stores,
            [
                make_reading("cnc-01", t - 3000, {"temp": 60.0}, type="cnc_spindle"),
                make_reading(
                    "cnc-01", t - 1000, {"temp": 61.5, "running": True}, type="cnc_spindle"
                ),
                make_reading("CNC-02", t - 2000, {"temp": 50.0}, site="site-2", type="cnc_spindle"),
                make_reading("press-1", t - 2000, {"bar": 180.0}, type="hydraulic_press"),
            ],
        )
        await stores.feed.mark_presence("cnc-01", "online", t - 1000)
        await raise_alert(stores, "cnc-01", rule="a", severity="warning")
        await raise_alert(stores, "cnc-01", rule="b", severity="critical")
        await raise_alert(stores, "press-1", rule="a", severity="warning")

        everything = await stores.reads.devices(DeviceFilter())
        assert [d.device_id for d in everything.items] == ["CNC-02", "cnc-01", "press-1"]
        assert everything.total == 3
        cnc = everything.items[1]
        assert cnc.metrics == ("running", "temp")
        assert cnc.latest == {"temp": 61.5, "running": True}
        assert cnc.latest_ts == t - 1000
        assert cnc.last_seen == t - 1000
        assert (cnc.state, cnc.site, cnc.type, cnc.gateway_id) == (
            "online", "site-1", "cnc_spindle", "gw-1"
        )  # fmt: skip
        assert (cnc.active_alerts, cnc.worst_severity) == (2, "critical")
        assert (everything.items[2].active_alerts, everything.items[2].worst_severity) == (
            1,
            "warning",
        )
        assert (everything.items[0].active_alerts, everything.items[0].worst_severity) == (0, None)
        assert everything.items[0].state == "unknown"

        searched = await stores.reads.devices(DeviceFilter(search="cnc"))
        assert [d.device_id for d in searched.items] == ["CNC-02", "cnc-01"]  # any case
        by_site = await stores.reads.devices(DeviceFilter(site="site-2"))
        assert [d.device_id for d in by_site.items] == ["CNC-02"]
        by_type = await stores.reads.devices(DeviceFilter(type="hydraulic_press"))
        assert [d.device_id for d in by_type.items] == ["press-1"]
        online = await stores.reads.devices(DeviceFilter(state="online"))
        assert [d.device_id for d in online.items] == ["cnc-01"]
        placed = await stores.reads.devices(
            DeviceFilter(device_ids=frozenset({"press-1", "cnc-01", "nowhere"}))
        )
        assert ([d.device_id for d in placed.items], placed.total) == (["cnc-01", "press-1"], 2)
        nothing = await stores.reads.devices(DeviceFilter(device_ids=frozenset()))
        assert (nothing.items, nothing.total) == ([], 0)

        second = await stores.reads.devices(DeviceFilter(limit=2, offset=2))
        assert ([d.device_id for d in second.items], second.total) == (["press-1"], 3)
        first = await stores.reads.devices(DeviceFilter(limit=2))
        assert (len(first.items), first.total) == (2, 3)
        with pytest.raises(ValueError, match="unknown device state"):
            await stores.reads.devices(DeviceFilter(state="asleep"))
        with pytest.raises(ValueError, match="limit must be within"):
            await stores.reads.devices(DeviceFilter(limit=0))

    async def test_one_device_facets_and_a_device_never_seen(self, stores: Stores) -> None:
        t = now_ms()
        await ingest(
            stores,
            [
                make_reading("cnc-01", t, {"temp": 60.0}, type="cnc_spindle"),
                make_reading("x-1", t, {"v": 1.0}, site="site-2", type=None),
            ],
        )
        device = await stores.reads.device("cnc-01")
        assert device is not None
        assert (device.device_id, device.latest) == ("cnc-01", {"temp": 60.0})
        assert await stores.reads.device("nobody") is None
        assert await stores.reads.facets() == (["site-1", "site-2"], ["cnc_spindle"])

    async def test_newer_readings_move_a_device_and_replays_do_not(self, stores: Stores) -> None:
        t = now_ms()
        await ingest(stores, [make_reading("cnc-01", t, {"temp": 60.0}, type="cnc_spindle")])
        moved = make_reading("cnc-01", t + 1000, {"rpm": 10.0}, site="site-9", gateway_id="gw-9")
        await ingest(stores, [moved])
        await stores.feed.write_readings(
            [make_reading("cnc-01", t - 5000, {"temp": 1.0}, site="old", type="other")]
        )
        device = await stores.reads.device("cnc-01")
        assert device is not None
        assert (device.site, device.gateway_id, device.type) == ("site-9", "gw-9", "cnc_spindle")
        assert device.metrics == ("rpm", "temp")
        assert device.last_seen == t + 1000

    async def test_presence_follows_the_newest_state(self, stores: Stores) -> None:
        t = now_ms()
        await ingest(stores, [make_reading("cnc-01", t, {"temp": 60.0})])
        assert not await stores.feed.mark_presence("nobody", "online", t)
        assert await stores.feed.mark_presence("cnc-01", "offline", t)
        assert not await stores.feed.mark_presence("cnc-01", "offline", t + 1)  # unchanged
        assert not await stores.feed.mark_presence("cnc-01", "online", t - 1000)  # older
        assert await stores.feed.mark_presence("cnc-01", "online", t + 2)
        device = await stores.reads.device("cnc-01")
        assert device is not None
        assert device.state == "online"

    # -- gateways --------------------------------------------------------------------------------

    async def test_gateways_online_until_their_heartbeat_is_old(self, stores: Stores) -> None:
        t = now_ms()
        await stores.feed.set_gateway_state(GatewayHealth.received(make_edge_metrics("gw-b", t), t))
        await stores.feed.set_gateway_state(
            GatewayHealth.received(make_edge_metrics("gw-a", t - 120_000), t - 120_000)
        )
        gateways = await stores.reads.gateways()
        assert [(g.gateway_id, g.state) for g in gateways] == [
            ("gw-a", "offline"),
            ("gw-b", "online"),
        ]

    # -- series ----------------------------------------------------------------------------------

    async def test_a_short_range_comes_raw_and_whole(self, stores: Stores) -> None:
        end = now_ms() // MINUTE * MINUTE
        readings = [
            make_reading("cnc-01", end - 600_000 + i * 1000, {"temp": float(i % 7)})
            for i in range(600)
        ]
        await stores.feed.write_readings(readings)
        series = await stores.reads.series("cnc-01", "temp", end - 600_000, end, 1000)
        assert (series.source, series.downsampled) == ("raw", False)
        assert series.ts == [r.ts for r in readings]
        assert series.values == [float(i % 7) for i in range(600)]
        inner = await stores.reads.series("cnc-01", "temp", end - 300_000, end - 299_000, 10)
        assert inner.ts == [end - 300_000]  # [start, end)

    async def test_a_dense_range_is_downsampled_keeping_its_extremes(self, stores: Stores) -> None:
        end = now_ms() // MINUTE * MINUTE
        values = [20.0 + (i % 10) / 10 for i in range(3600)]
        values[1234], values[2345] = 99.0, -5.0
        await stores.feed.write_readings(
            [
                make_reading("cnc-01", end - 3_600_000 + i * 1000, {"temp": v})
                for i, v in enumerate(values)
            ]
        )
        series = await stores.reads.series("cnc-01", "temp", end - 3_600_000, end, 100)
        assert series.downsampled
        assert len(series.ts) <= 100
        assert (max(series.values), min(series.values)) == (99.0, -5.0)

    async def test_a_long_range_reads_rollups_then_the_raw_tail(self, stores: Stores) -> None:
        end = now_ms() // MINUTE * MINUTE
        start = end - 8 * 60 * MINUTE
        readings = [
            make_reading("cnc-01", ts, {"temp": float((ts // MINUTE) % 30) + (ts % MINUTE) / 1e6})
            for ts in range(start, end, 20_000)
        ]
        await stores.feed.write_readings(readings)
        rolled_until = end - 5 * MINUTE
        await stores.feed.rebuild_rollups(start, rolled_until)
        series = await stores.reads.series("cnc-01", "temp", start, end, 10_000)
        assert (series.source, series.downsampled) == ("1m", False)
        rolled = [
            (ts, v) for ts, v in zip(series.ts, series.values, strict=True) if ts < rolled_until
        ]
        # Each minute as its min and max, at the minute's start.
        assert len(rolled) == 2 * (rolled_until - start) // MINUTE
        assert rolled[:2] == [(start, min(r.metrics["temp"] for r in readings[:3])),
                              (start, max(r.metrics["temp"] for r in readings[:3]))]  # fmt: skip
        tail = [
            (ts, v) for ts, v in zip(series.ts, series.values, strict=True) if ts >= rolled_until
        ]
        assert tail == [(r.ts, r.metrics["temp"]) for r in readings if r.ts >= rolled_until]

    @pytest.mark.parametrize(
        ("days", "max_points", "tier"), [(7, 1000, "1h"), (30, 1000, "1h"), (365, 1000, "1d")]
    )
    async def test_a_long_range_reads_the_coarsest_tier_it_needs(
        self, stores: Stores, days: int, max_points: int, tier: str
    ) -> None:
        # Half past an hour, so the raw tail below falls in the range's open hour whatever the
        # clock says (at 13:04, `now - 5 min` would be in the closed 12:00 hour, whose rollup
        # the test does not rebuild after writing it).
        end = now_ms() // HOUR * HOUR - 30 * MINUTE
        start = end - days * DAY
        # One reading an hour, a spike in the middle, then a raw tail nothing rolled up yet.
        stamps = list(range(start - start % HOUR + HOUR, end - 10 * MINUTE, HOUR))
        values = [float(i % 5) for i in range(len(stamps))]
        values[len(values) // 2] = 99.0
        readings = [
            make_reading("cnc-01", t, {"temp": v}) for t, v in zip(stamps, values, strict=True)
        ]
        await stores.feed.write_readings(readings)
        await stores.feed.rebuild_rollups(start, end - 10 * MINUTE)
        await stores.feed.rebuild_tier("1h", start, end - 10 * MINUTE)
        await stores.feed.rebuild_tier("1d", start, end - 10 * MINUTE)
        tail = [make_reading("cnc-01", end - 5 * MINUTE, {"temp": -7.0})]
        await stores.feed.write_readings(tail)
        series = await stores.reads.series("cnc-01", "temp", start, end, max_points)
        assert series.source == tier
        assert len(series.ts) <= max_points
        assert (max(series.values), min(series.values)) == (99.0, -7.0)
        assert series.ts[-1] == end - 5 * MINUTE  # from the raw readings, not rolled up yet
        assert all(start <= t < end for t in series.ts)

    async def test_a_series_of_nothing_is_empty_and_bad_ranges_are_refused(
        self, stores: Stores
    ) -> None:
        t = now_ms()
        series = await stores.reads.series("nobody", "nothing", t - 1000, t, 10)
        assert (series.ts, series.values, series.downsampled) == ([], [], False)
        with pytest.raises(ValueError, match="start must be before end"):
            await stores.reads.series("cnc-01", "temp", t, t, 10)
        with pytest.raises(ValueError, match="max_points must be within"):
            await stores.reads.series("cnc-01", "temp", t - 1000, t, 1)

    # -- alerts ----------------------------------------------------------------------------------

    async def test_alerts_filtered_newest_first_and_paged(self, stores: Stores) -> None:
        t = now_ms()
        old = await raise_alert(stores, "cnc-01", rule="a", ts=t - 3000)
        crit = await raise_alert(stores, "cnc-02", rule="b", severity="critical", ts=t - 2000)
        gone = await raise_alert(stores, "cnc-01", rule="c", ts=t - 1000)
        cleared = await stores.feed.apply_alert(
            transition("cnc-01", rule="c", kind="cleared", ts=t)
        )
        assert cleared is not None
        assert (cleared.state, cleared.cleared_at) == ("cleared", t)
        await stores.alerts.acknowledge_alert(old.id, "olga", None)

        def ids(page: Any) -> list[int]:
            return [a.id for a in page.items]

        assert ids(await stores.reads.alerts(AlertFilter())) == [crit.id, old.id]
        assert ids(await stores.reads.alerts(AlertFilter(status="cleared"))) == [gone.id]
        assert ids(await stores.reads.alerts(AlertFilter(status="unacknowledged"))) == [
            gone.id,
            crit.id,
        ]
        assert ids(await stores.reads.alerts(AlertFilter(status="all"))) == [
            gone.id,
            crit.id,
            old.id,
        ]
        assert ids(await stores.reads.alerts(AlertFilter(severity="critical"))) == [crit.id]
        assert ids(await stores.reads.alerts(AlertFilter(status="all", device_id="cnc-01"))) == [
            gone.id,
            old.id,
        ]
        page = await stores.reads.alerts(AlertFilter(status="all", limit=2, offset=2))
        assert (ids(page), page.total) == ([old.id], 3)
        with pytest.raises(ValueError, match="unknown severity"):
            await stores.reads.alerts(AlertFilter(severity="fatal"))  # type: ignore[arg-type]

    async def test_a_repeated_alert_counts_and_a_replay_does_not(self, stores: Stores) -> None:
        t = now_ms()
        first = await raise_alert(stores, "cnc-01", ts=t - 2000)
        again = await raise_alert(stores, "cnc-01", ts=t - 1000, value=85.0)
        replay = await raise_alert(stores, "cnc-01", ts=t - 1000, value=85.0)
        assert again.id == first.id
        assert (again.occurrences, again.value, again.updated_at) == (2, 85.0, t - 1000)
        assert replay == again
        assert await stores.feed.apply_alert(transition("nobody", kind="cleared", ts=t)) is None

    async def test_alert_markers_are_the_alerts_open_during_the_range(self, stores: Stores) -> None:
        t = now_ms()
        before = await raise_alert(stores, "cnc-01", rule="a", ts=t - 60 * MINUTE)
        await stores.feed.apply_alert(
            transition("cnc-01", rule="a", kind="cleared", ts=t - 50 * MINUTE)
        )
        during = await raise_alert(stores, "cnc-01", rule="b", ts=t - 20 * MINUTE)
        still_open = await raise_alert(stores, "cnc-01", rule="c", ts=t - 90 * MINUTE)
        await raise_alert(stores, "cnc-02", rule="b", ts=t - 20 * MINUTE)
        markers = await stores.reads.alert_markers("cnc-01", t - 30 * MINUTE, t)
        assert [m.id for m in markers] == [during.id, still_open.id]
        wider = await stores.reads.alert_markers("cnc-01", t - 55 * MINUTE, t)
        assert [m.id for m in wider] == [during.id, before.id, still_open.id]

    async def test_acknowledge_and_clear(self, stores: Stores) -> None:
        raised = await raise_alert(stores, "cnc-01")
        acked = await stores.alerts.acknowledge_alert(raised.id, "olga", "looking")
        assert acked is not None
        assert (acked.acknowledged, acked.ack_by, acked.ack_comment) == (True, "olga", "looking")
        assert acked.ack_at is not None
        assert abs(acked.ack_at - now_ms()) < 60_000
        assert acked.state == "active"
        cleared = await stores.alerts.clear_alert(raised.id, "olga")
        assert cleared is not None
        assert (cleared.state, cleared.cleared_by, cleared.acknowledged) == (
            "cleared",
            "olga",
            True,
        )
        assert cleared.cleared_at is not None
        assert await stores.alerts.clear_alert(raised.id, "vic") == cleared  # unchanged
        assert await stores.alerts.get_alert(raised.id) == cleared
        assert await stores.alerts.acknowledge_alert(999_999, "olga", None) is None
        assert await stores.alerts.clear_alert(999_999, "olga") is None
        assert await stores.alerts.get_alert(999_999) is None
        assert (await stores.reads.alerts(AlertFilter())).total == 0

    async def test_ping(self, stores: Stores) -> None:
        assert await stores.reads.ping() == {"postgres": True, "redis": True}

    # -- accounts --------------------------------------------------------------------------------

    async def test_users_authenticate_with_the_right_password_only(self, stores: Stores) -> None:
        auth = stores.accounts
        assert await auth.add_user("ops", "correct horse", "operator", actor=ACTOR)
        assert await auth.authenticate("ops", "correct horse") == Principal("ops", "operator")
        assert await auth.authenticate("ops", "wrong horse!") is None
        assert await auth.authenticate("nobody", "correct horse") is None
        assert (await auth.check_password("ops", "wrong horse!")).failure == "wrong_password"
        assert (await auth.check_password("nobody", "correct horse")).failure == "unknown_user"

        # upsert: new password and role
        assert not await auth.add_user("ops", "battery staple", "admin", actor=ACTOR)
        assert await auth.authenticate("ops", "correct horse") is None
        assert await auth.authenticate("ops", "battery staple") == Principal("ops", "admin")
        assert await auth.get_user("ops") == Principal("ops", "admin")
        assert await auth.list_users() == [Principal("ops", "admin")]
        assert await auth.delete_user("ops", actor=ACTOR)
        assert not await auth.delete_user("ops", actor=ACTOR)
        assert await auth.get_user("ops") is None

    async def test_bad_users_are_refused(self, stores: Stores) -> None:
        auth = stores.accounts
        with pytest.raises(ValueError, match="at least 8"):
            await auth.add_user("ops", "short", "operator", actor=ACTOR)
        with pytest.raises(ValueError, match="unknown role"):
            await auth.add_user("ops", "long enough", "root", actor=ACTOR)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name must be"):
            await auth.add_user("o p s", "long enough", "viewer", actor=ACTOR)

    async def test_sessions_end_with_logout_a_new_password_or_removal(self, stores: Stores) -> None:
        auth = stores.accounts
        await auth.add_user("olga", PASSWORD, "operator", actor=ACTOR)
        olga = Principal("olga", "operator")
        a, b = [await auth.create_session(olga, 12, "10.0.0.1") for _ in "ab"]
        assert a != b
        assert await auth.session_user(a) == olga
        assert await auth.end_session(a)
        assert not await auth.end_session(a)
        assert await auth.session_user(a) is None
        await auth.add_user("olga", PASSWORD, "admin", actor=ACTOR)  # same password, new role
        assert await auth.session_user(b) == Principal("olga", "admin")
        await auth.add_user("olga", "a new password", "admin", actor=ACTOR)
        assert await auth.session_user(b) is None
        c = await auth.create_session(olga, 12, None)
        assert await auth.end_user_sessions("olga") == 1
        assert await auth.session_user(c) is None
        d = await auth.create_session(olga, 12, None)
        await auth.delete_user("olga", actor=ACTOR)
        assert await auth.session_user(d) is None
        await auth.add_user("olga", PASSWORD, "operator", actor=ACTOR)
        expired = await auth.create_session(olga, -1, None)
        assert await auth.session_user(expired) is None

    async def test_tokens_verify_until_revoked(self, stores: Stores) -> None:
        auth = stores.accounts
        token = await auth.create_token("ci", "viewer", actor=ACTOR)
        assert token.startswith("iot_")
        assert len(token) > 40

        assert await auth.verify_token(token) == Principal("token:ci", "viewer")
        assert await auth.verify_token(token + "x") is None
        assert await auth.verify_token("Bearer " + token) is None
        assert await auth.verify_token("") is None

        with pytest.raises(ValueError, match="active token named 'ci'"):
            await auth.create_token("ci", "admin", actor=ACTOR)
        assert await auth.revoke_token("ci", actor=ACTOR)
        assert not await auth.revoke_token("ci", actor=ACTOR)
        assert await auth.verify_token(token) is None

        again = await auth.create_token(
            "ci", "operator", actor=ACTOR
        )  # a revoked name can be reused
        assert await auth.verify_token(again) == Principal("token:ci", "operator")
        assert await auth.verify_token(token) is None

    async def test_tokens_are_listed_and_expire(self, stores: Stores) -> None:
        auth = stores.accounts
        await auth.create_token("ci", "operator", actor=ACTOR)
        await auth.verify_token(await auth.create_token("used", "viewer", actor=ACTOR))
        info, used = await auth.list_tokens()
        assert (info.name, info.role, info.revoked_at, info.expires_at, info.last_used_at) == (
            "ci", "operator", None, None, None
        )  # fmt: skip
        assert (used.name, used.role) == ("used", "viewer")
        assert used.last_used_at is not None

        short = await auth.create_token("short", "viewer", actor=ACTOR, expires_in_s=0.2)

        async def expired() -> int | None:
            return (await auth.check_token(short)).expired_at

        expired_at = await async_wait_until(expired, timeout=5, what="the token to expire")
        assert abs(expired_at - now_ms()) < 60_000
        assert (await auth.check_token(short)).principal is None
        # An expired token's name is free again.
        await auth.create_token("short", "viewer", actor=ACTOR)
        with pytest.raises(ValueError, match="expiry must be within"):
            await auth.create_token("bad", "viewer", actor=ACTOR, expires_in_s=0)

    # -- the audit trail -------------------------------------------------------------------------

    async def test_changes_are_audited_and_the_trail_filters(self, stores: Stores) -> None:
        since = now_ms() - 1
        auth = stores.accounts
        await auth.add_user("olga", PASSWORD, "operator", actor=ACTOR)
        await auth.add_user("olga", "a new password", "admin", actor=ACTOR)
        await auth.create_token("ci", "viewer", actor=ACTOR)
        await auth.revoke_token("ci", actor=ACTOR)
        await auth.delete_user("olga", actor=ACTOR)
        await stores.audit.record(
            AuditEvent(Actor("vic", "10.0.0.9"), "auth.login", "failure", details={"reason": "x"})
        )

        page = await stores.audit.entries(AuditFilter(since=since))
        shown = [(e.actor, e.action, e.outcome, e.client, e.target, e.details) for e in page.items]
        assert shown == [
            ("vic", "auth.login", "failure", "10.0.0.9", None, {"reason": "x"}),
            ("contract", "user.remove", "success", "pytest", "olga",
             {"role": "admin", "sessions_ended": 0}),
            ("contract", "token.revoke", "success", "pytest", "ci", {"role": "viewer"}),
            ("contract", "token.create", "success", "pytest", "ci",
             {"role": "viewer", "expires_at": None}),
            ("contract", "user.update", "success", "pytest", "olga",
             {"password_changed": True, "sessions_ended": 0,
              "role": {"from": "operator", "to": "admin"}}),
            ("contract", "user.add", "success", "pytest", "olga", {"role": "operator"}),
        ]  # fmt: skip
        assert page.total == 6
        assert all(since <= e.at <= now_ms() + 1 for e in page.items)

        async def actions(**f: Any) -> list[str]:
            return [
                e.action for e in (await stores.audit.entries(AuditFilter(since=since, **f))).items
            ]

        assert await actions(action="user.") == ["user.remove", "user.update", "user.add"]
        assert await actions(action="token.create") == ["token.create"]
        assert await actions(outcome="failure") == ["auth.login"]
        assert await actions(actor="vic") == ["auth.login"]
        paged = await stores.audit.entries(AuditFilter(since=since, limit=2, offset=4))
        assert ([e.action for e in paged.items], paged.total) == (["user.update", "user.add"], 6)
        with pytest.raises(ValueError, match="unknown action"):
            await stores.audit.entries(AuditFilter(action="nothing"))
