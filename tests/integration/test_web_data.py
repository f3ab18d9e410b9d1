"""The read model, the alert service and the accounts against the real PostgreSQL and Redis.

PostgreSQL: the session's throwaway database, emptied per test (`pg`). Redis is shared with
everyone's tests: every key and device id here is unique to the test and removed afterwards,
and what arrives on the shared alert channel is filtered by this test's device ids.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.rules.model import AlertTransition
from hub.storage import series as storage_series
from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.audit_model import Actor
from hub.storage.live import LiveStore
from hub.storage.model import AlertRow
from hub.storage.postgres import Database
from hub.storage.read_model import PostgresReadModel, RedisAlertEvents, redis_client
from hub.storage.redis_keys import ALERTS_CHANNEL, GATEWAYS_KEY, LAST_SEEN_KEY, latest_key
from hub.web.model import AlertFilter, DeviceFilter, Principal
from hub.web.services import AlertService
from tests.support.readings import make_reading

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000) // 60_000 * 60_000  # a whole minute: rollup buckets line up
OPERATOR = Principal("olga", "operator")
VIEWER = Principal("vic", "viewer")
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
ACTOR = Actor("test", "pytest")


@pytest.fixture
async def web(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[PostgresReadModel]:
    client = redis_client(redis_url)
    yield PostgresReadModel(pool, client, gateway_offline_after_s=30)
    await client.aclose()


@pytest.fixture
async def alerts(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[AlertService]:
    """Acknowledging and clearing as the app wires them: PostgreSQL, Redis, the audit log."""
    client = redis_client(redis_url)
    yield AlertService(Database(pool), RedisAlertEvents(client), PostgresAuditLog(pool))
    await client.aclose()


@pytest.fixture
async def ids(redis: Redis) -> AsyncIterator[list[str]]:
    """Device (and gateway) ids unique to this test; their Redis entries are removed after."""
    made = [f"dev-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    yield made
    await redis.delete(*(latest_key(d) for d in made))
    await redis.zrem(LAST_SEEN_KEY, *made)
    await redis.hdel(GATEWAYS_KEY, *made)


def alert(device_id: str, rule: str = "temp.threshold", **changes: Any) -> AlertTransition:
    base = AlertTransition(
        kind="raised",
        device_id=device_id,
        gateway_id="gw-1",
        rule=rule,
        severity="warning",
        metric="temp",
        value=81.0,
        message="temp 81.0 above 80",
        ts=NOW,
    )
    return replace(base, **changes)


async def raise_alert(database: Database, t: AlertTransition) -> AlertRow:
    row = await database.apply_alert(t)
    assert row is not None
    return row


# -- devices -----------------------------------------------------------------------------------


async def fleet(database: Database, redis_url: str, ids: list[str]) -> None:
    """ids[0..2]: two on site-1 (cnc, press), one on site-2 (cnc); latest values in Redis."""
    a, b, c = ids[:3]
    readings = [
        make_reading(a, NOW - 5000, {"temp": 61.5, "running": True}, type="cnc_spindle"),
        make_reading(a, NOW - 1000, {"temp": 62.0, "load": 0.4}, type="cnc_spindle"),
        make_reading(b, NOW - 2000, {"pressure": 180.0}, type="hydraulic_press"),
        make_reading(c, NOW - 3000, {"temp": 20.0}, type="cnc_spindle", site="site-2"),
    ]
    await database.write_readings(readings)
    await database.set_device_state(b, "site-1", "gw-1", "offline", NOW)
    async with LiveStore.from_url(redis_url) as live:
        assert await live.update_latest(readings)


async def test_devices_list_with_latest_values_and_alert_counts(
    database: Database, web: PostgresReadModel, redis_url: str, ids: list[str]
) -> None:
    a, b = ids[:2]
    await fleet(database, redis_url, ids)
    await raise_alert(database, alert(a))
    await raise_alert(database, alert(a, rule="load.threshold", severity="critical"))
    cleared = await raise_alert(database, alert(b))
    await database.clear_alert(cleared.id, "olga")

    page = await web.devices(DeviceFilter())
    assert page.total == 3
    assert [d.device_id for d in page.items] == sorted(ids[:3])
    first = await web.device(a)
    assert first is not None
    assert first.metrics == ("load", "running", "temp")
    assert first.latest == {"temp": 62.0, "running": True, "load": 0.4}
    assert first.latest_ts == NOW - 1000
    assert first.last_seen == NOW - 1000
    assert (first.active_alerts, first.worst_severity) == (2, "critical")
    second = await web.device(b)
    assert second is not None
    assert (second.state, second.active_alerts, second.worst_severity) == ("offline", 0, None)
    assert await web.device("no-such-device") is None


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (DeviceFilter(site="site-2"), [2]),
        (DeviceFilter(type="cnc_spindle"), [0, 2]),
        (DeviceFilter(site="site-1", type="cnc_spindle"), [0]),
        (DeviceFilter(state="offline"), [1]),
        (DeviceFilter(state="online"), []),
    ],
)
async def test_device_filters(
    database: Database,
    web: PostgresReadModel,
    redis_url: str,
    ids: list[str],
    f: DeviceFilter,
    expected: list[int],
) -> None:
    await fleet(database, redis_url, ids)
    page = await web.devices(f)
    assert [d.device_id for d in page.items] == sorted(ids[i] for i in expected)
    assert page.total == len(expected)


async def test_search_is_a_case_insensitive_substring_and_literal(
    database: Database, web: PostgresReadModel, redis_url: str, ids: list[str]
) -> None:
    await fleet(database, redis_url, ids)
    middle = ids[1][4:10].upper()
    assert [d.device_id for d in (await web.devices(DeviceFilter(search=middle))).items] == [ids[1]]
    # LIKE wildcards are plain characters here.
    assert (await web.devices(DeviceFilter(search="%"))).total == 0
    assert (await web.devices(DeviceFilter(search="_"))).total == 0


async def test_pagination_reports_the_total(
    database: Database, web: PostgresReadModel, redis_url: str, ids: list[str]
) -> None:
    await fleet(database, redis_url, ids)
    first = await web.devices(DeviceFilter(limit=2))
    rest = await web.devices(DeviceFilter(limit=2, offset=2))
    beyond = await web.devices(DeviceFilter(limit=2, offset=10))
    assert (first.total, rest.total, beyond.total) == (3, 3, 3)
    assert [d.device_id for d in first.items + rest.items] == sorted(ids[:3])
    assert beyond.items == []
    with pytest.raises(ValueError, match="limit"):
        await web.devices(DeviceFilter(limit=0))


async def test_facets(
    database: Database, web: PostgresReadModel, redis_url: str, ids: list[str]
) -> None:
    await fleet(database, redis_url, ids)
    assert await web.facets() == (["site-1", "site-2"], ["cnc_spindle", "hydraulic_press"])


async def test_without_redis_lists_still_work(
    database: Database, pool: asyncpg.Pool, redis_url: str, ids: list[str]
) -> None:
    await fleet(database, redis_url, ids)
    away = redis_client(UNREACHABLE_REDIS, timeout_s=0.5)
    try:
        web = PostgresReadModel(pool, away)
        page = await web.devices(DeviceFilter())
        assert page.total == 3
        assert all(d.latest == {} and d.latest_ts is None for d in page.items)
        assert await web.gateways() == []
        assert await web.ping() == {"postgres": True, "redis": False}
    finally:
        await away.aclose()


async def test_ping(web: PostgresReadModel) -> None:
    assert await web.ping() == {"postgres": True, "redis": True}


# -- gateways ----------------------------------------------------------------------------------


async def test_gateways_from_redis_online_and_offline(
    web: PostgresReadModel, redis: Redis, ids: list[str]
) -> None:
    now = int(time.time() * 1000)
    fresh, stale, broken = ids[:3]
    record = {
        "v": 1,
        "site": "site-1",
        "ts": now,
        "uptime_s": 60.0,
        "buffer_depth": 12,
        "buffer_bytes": 4096,
        "buffer_max_bytes": 1 << 30,
        "buffer_oldest_age_s": 2.5,
        "received_total": 100,
        "forwarded_total": 88,
        "dropped_total": 1,
        "dead_lettered_total": 0,
        "received_rate": 5.0,
        "forwarded_rate": 4.5,
        "kafka_connected": False,
    }
    await redis.hset(
        GATEWAYS_KEY,
        mapping={
            fresh: json.dumps({**record, "gateway_id": fresh, "received_ts": now}),
            stale: json.dumps({**record, "gateway_id": stale, "received_ts": now - 31_000}),
            broken: "{not json",
        },
    )
    views = {g.gateway_id: g for g in await web.gateways() if g.gateway_id in ids}
    assert set(views) == {fresh, stale}  # the unreadable entry is skipped
    assert views[fresh].state == "online"
    assert views[stale].state == "offline"
    g = views[fresh]
    assert (g.buffer_depth, g.buffer_bytes, g.buffer_oldest_age_s) == (12, 4096, 2.5)
    assert (g.forwarded_rate, g.received_rate, g.dropped_total, g.kafka_connected) == (
        4.5,
        5.0,
        1,
        False,
    )


# -- series ------------------------------------------------------------------------------------


async def test_short_range_comes_raw_and_whole(database: Database, web: PostgresReadModel) -> None:
    start = NOW - 600_000
    await database.write_readings(
        [make_reading("cnc-01", start + i * 1000, {"temp": float(i)}) for i in range(600)]
    )
    series = await web.series("cnc-01", "temp", start + 10_000, start + 20_000, 1000)
    assert series.source == "raw"
    assert not series.downsampled
    # [start, end): the reading at `end` is not included.
    assert series.ts == [start + i * 1000 for i in range(10, 20)]
    assert series.values == [float(i) for i in range(10, 20)]


async def test_dense_range_is_downsampled_keeping_spikes(
    database: Database, web: PostgresReadModel
) -> None:
    start = NOW - 3_600_000
    values = [20.0 + (i % 10) / 10 for i in range(3600)]
    values[1234] = 95.0  # a spike
    values[2345] = -3.0  # and a dip
    await database.write_readings(
        [make_reading("cnc-01", start + i * 1000, {"temp": v}) for i, v in enumerate(values)]
    )
    series = await web.series("cnc-01", "temp", start, start + 3_600_000, 200)
    assert series.source == "raw"
    assert series.downsampled
    assert len(series.ts) <= 200
    assert series.ts == sorted(series.ts)
    assert (start + 1234_000, 95.0) in zip(series.ts, series.values, strict=True)
    assert (start + 2345_000, -3.0) in zip(series.ts, series.values, strict=True)


async def test_long_range_uses_rollups_plus_the_fresh_tail(
    database: Database, web: PostgresReadModel
) -> None:
    start = NOW - 12 * 3_600_000
    readings = [
        make_reading("cnc-01", start + i * 30_000, {"temp": 50.0 + (i % 2)}) for i in range(1440)
    ]
    readings[700] = make_reading("cnc-01", start + 700 * 30_000, {"temp": 99.0})
    await database.write_readings(readings)
    rolled_until = NOW - 10 * 60_000  # the last ten minutes are not rolled up yet
    await database.rebuild_rollups(start, rolled_until)

    series = await web.series("cnc-01", "temp", start, NOW, 10_000)
    assert series.source == "1m"
    assert not series.downsampled
    assert max(series.values) == 99.0
    rolled = [t for t in series.ts if t < rolled_until]
    assert len(set(rolled)) == (rolled_until - start) // 60_000  # one bucket per minute
    # Each minute holds 50.0 and 51.0: drawn as its min and max.
    assert series.values[:2] == [50.0, 51.0]
    tail = [(t, v) for t, v in zip(series.ts, series.values, strict=True) if t >= rolled_until]
    assert tail == [(r.ts, r.metrics["temp"]) for r in readings if r.ts >= rolled_until]

    small = await web.series("cnc-01", "temp", start, NOW, 100)
    assert small.downsampled
    assert len(small.ts) <= 100
    assert max(small.values) == 99.0


async def test_too_many_raw_rows_fall_back_to_rollups(
    database: Database, web: PostgresReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_series, "RAW_MAX_ROWS", 50)
    start = NOW - 3_600_000
    await database.write_readings(
        [make_reading("cnc-01", start + i * 10_000, {"temp": float(i)}) for i in range(360)]
    )
    await database.rebuild_rollups(start, NOW)
    series = await web.series("cnc-01", "temp", start, NOW, 1000)
    assert series.source == "1m"
    assert len(series.ts) == 120  # 60 minutes, each its min and max


async def test_unknown_metric_is_an_empty_series(web: PostgresReadModel) -> None:
    series = await web.series("nobody", "nothing", NOW - 1000, NOW, 10)
    assert (series.ts, series.values, series.downsampled) == ([], [], False)


@pytest.mark.parametrize(
    ("start", "end", "max_points", "message"),
    [
        (NOW, NOW, 100, "start must be before end"),
        (NOW, NOW - 1, 100, "start must be before end"),
        (NOW - 1000, NOW, 1, "max_points must be within 2..10000"),
        (NOW - 1000, NOW, 10_001, "max_points must be within 2..10000"),
    ],
)
async def test_bad_series_requests_are_refused(
    web: PostgresReadModel, start: int, end: int, max_points: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await web.series("cnc-01", "temp", start, end, max_points)


# -- alerts ------------------------------------------------------------------------------------


async def test_alert_filters_and_pages(database: Database, web: PostgresReadModel) -> None:
    warn = await raise_alert(database, alert("cnc-01", rule="a"))
    crit = await raise_alert(database, alert("cnc-01", rule="b", severity="critical", ts=NOW + 1))
    other = await raise_alert(database, alert("press-01", rule="a", ts=NOW + 2))
    await database.clear_alert(warn.id, "olga")
    await database.acknowledge_alert(crit.id, "olga", None)

    async def listed(**kwargs: Any) -> list[int]:
        return [a.id for a in (await web.alerts(AlertFilter(**kwargs))).items]

    assert await listed() == [other.id, crit.id]  # active, newest first
    assert await listed(status="cleared") == [warn.id]
    assert await listed(status="all") == [other.id, crit.id, warn.id]
    assert await listed(status="unacknowledged") == [other.id, warn.id]
    assert await listed(status="all", severity="critical") == [crit.id]
    assert await listed(status="all", device_id="cnc-01") == [crit.id, warn.id]
    page = await web.alerts(AlertFilter(status="all", limit=1, offset=1))
    assert ([a.id for a in page.items], page.total) == ([crit.id], 3)
    with pytest.raises(ValueError, match="unknown alert status"):
        await web.alerts(AlertFilter(status="open"))  # type: ignore[arg-type]


async def test_alert_markers_overlap_the_range(database: Database, web: PostgresReadModel) -> None:
    before = await raise_alert(database, alert("cnc-01", rule="old", ts=NOW - 100_000))
    await database.clear_alert(before.id, "olga")  # cleared now: overlaps any recent range
    await raise_alert(database, alert("cnc-01", rule="in", ts=NOW - 30_000))
    await raise_alert(database, alert("cnc-01", rule="later", ts=NOW + 100_000))
    await raise_alert(database, alert("press-01", rule="in", ts=NOW - 30_000))
    markers = await web.alert_markers("cnc-01", NOW - 60_000, NOW)
    assert [m.rule for m in markers] == ["in", "old"]
    assert [m.rule for m in await web.alert_markers("cnc-01", NOW - 300_000, NOW - 200_000)] == []


async def next_alert_event(pubsub: Any, device_id: str, timeout: float = 10) -> dict[str, Any]:
    """The next event on the shared alert channel about `device_id` (others' are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            event: dict[str, Any] = json.loads(message["data"])
            if event.get("device_id") == device_id:
                return event


async def test_acknowledge_and_clear_are_recorded_and_published(
    database: Database, alerts: AlertService, redis: Redis, ids: list[str]
) -> None:
    device = ids[0]
    raised = await raise_alert(database, alert(device))
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(ALERTS_CHANNEL)

        acked = await alerts.acknowledge(raised.id, OPERATOR, "  looking into it  ")
        assert acked is not None
        assert (acked.acknowledged, acked.ack_by, acked.ack_comment) == (
            True,
            "olga",
            "looking into it",
        )
        assert acked.ack_at is not None
        event = await next_alert_event(pubsub, device)
        assert event == {"v": 1, "event": "acknowledged", **acked.to_json()}

        cleared = await alerts.clear(raised.id, OPERATOR)
        assert cleared is not None
        assert (cleared.state, cleared.cleared_by) == ("cleared", "olga")
        event = await next_alert_event(pubsub, device)
        assert event == {"v": 1, "event": "cleared", **cleared.to_json()}

        # Clearing again changes nothing and publishes nothing: the next event on the channel
        # about this device is the marker sent after it.
        again = await alerts.clear(raised.id, OPERATOR)
        assert again == cleared
        await redis.publish(ALERTS_CHANNEL, json.dumps({"device_id": device, "marker": True}))
        assert (await next_alert_event(pubsub, device)).get("marker") is True


async def test_a_viewer_can_neither_acknowledge_nor_clear(
    database: Database, alerts: AlertService
) -> None:
    raised = await raise_alert(database, alert("cnc-01"))
    with pytest.raises(PermissionError):
        await alerts.acknowledge(raised.id, VIEWER, None)
    with pytest.raises(PermissionError):
        await alerts.clear(raised.id, VIEWER)
    unchanged = await database.get_alert(raised.id)
    assert unchanged == raised


async def test_acknowledge_edge_cases(database: Database, alerts: AlertService) -> None:
    raised = await raise_alert(database, alert("cnc-01"))
    assert await alerts.acknowledge(999_999, OPERATOR, None) is None
    assert await alerts.clear(999_999, OPERATOR) is None
    with pytest.raises(ValueError, match="at most 1000"):
        await alerts.acknowledge(raised.id, OPERATOR, "x" * 1001)
    blank = await alerts.acknowledge(raised.id, Principal("token:ci", "admin"), "   ")
    assert blank is not None
    assert (blank.ack_by, blank.ack_comment) == ("token:ci", None)


# -- users and tokens --------------------------------------------------------------------------


async def test_passwords_and_tokens_are_stored_hashed(pool: asyncpg.Pool) -> None:
    """What the accounts contract (tests/contracts/web_storage.py) cannot see: the rows."""
    auth = PostgresAccounts(pool)
    await auth.add_user("ops", "correct horse", "operator", actor=ACTOR)
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE name = 'ops'")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored

    token = await auth.create_token("ci", "viewer", actor=ACTOR)
    stored = await pool.fetchrow("SELECT token_hash, last_used_at FROM api_tokens")
    assert token not in stored["token_hash"]
    assert stored["last_used_at"] is None
    assert await auth.verify_token(token) == Principal("token:ci", "viewer")
    assert await pool.fetchval("SELECT last_used_at FROM api_tokens") is not None
