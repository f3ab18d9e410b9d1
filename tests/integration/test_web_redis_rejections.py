"""The web process against a real Redis that refuses its user (NOPERM from an ACL): the live
fan-out keeps retrying, not ready meanwhile, and subscribes once the right is granted; pages and
API calls go without what Redis refuses, as they do while it is away.

Each test runs a redis-server of its own: the shared one must never have its ACL changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.rules.model import AlertTransition
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.live import LiveStore
from hub.storage.live_feed import RedisLiveFeed
from hub.storage.postgres import Database
from hub.storage.read_model import PostgresReadModel, RedisAlertEvents, connect_pool, redis_client
from hub.storage.redis_keys import GATEWAYS_KEY, READINGS_CHANNEL
from hub.storage.redis_values import GatewayHealth, encode_gateway_health
from hub.web.fanout import LiveFanout
from hub.web.model import DeviceFilter, Principal
from hub.web.services import AlertService
from tests.support.readings import make_edge_metrics, make_reading
from tests.support.redis_server import RedisServer, acl_setuser, redis_server
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
USER, PASSWORD = "web", "web-secret"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


@pytest.fixture
async def admin(server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url(), decode_responses=True)
    yield client
    await client.aclose()


def events(caplog: pytest.LogCaptureFixture, logger: str, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.getMessage() == name]


async def test_fanout_refused_the_channels_retries_and_subscribes_once_allowed(
    server: RedisServer, admin: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await acl_setuser(admin, USER, "on", f">{PASSWORD}", "~*", "resetchannels", "+@all")
    caplog.set_level(logging.INFO, logger="hub.web.fanout")
    client = Redis.from_url(server.url(USER, PASSWORD), socket_connect_timeout=2)
    fan = LiveFanout(RedisLiveFeed(client, backoff_initial_s=0.05, backoff_max_s=0.2))
    await fan.start()
    try:
        sub = fan.subscribe(devices=frozenset({"d"}), alerts=False)

        async def refused_again_and_again() -> bool:
            # Redis's own record of the refused SUBSCRIBEs: the fan-out keeps trying.
            entries = await admin.acl_log()
            return any(e["reason"] == "channel" and int(str(e["count"])) >= 3 for e in entries)

        await async_wait_until(refused_again_and_again, 15, "three refused subscriptions")
        with pytest.raises(TimeoutError):  # not even for a moment: /readyz says not ready
            await fan.wait_subscribed(timeout=1)
        (rejected,) = events(caplog, "hub.web.fanout", "live_redis_rejected")  # logged once
        assert rejected.__dict__["error"].startswith("NOPERM")
        assert not events(caplog, "hub.web.fanout", "live_fanout_crashed")

        await acl_setuser(admin, USER, "allchannels")
        await fan.wait_subscribed(timeout=15)
        reading = {"site": "s", "device_id": "d", "type": None, "ts": NOW, "seq": 1}
        message = {"v": 1, "readings": [{**reading, "metrics": {"n": 1}}]}
        await admin.publish(READINGS_CHANNEL, json.dumps(message))
        async with asyncio.timeout(10):
            event = await anext(sub)
        assert [r.seq for r in event.readings] == [1]
    finally:
        await fan.stop()


@pytest.fixture
async def pool(postgres: str, pg: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    p = await connect_pool(postgres)
    yield p
    await p.close()


async def test_pages_go_without_what_redis_refuses(
    database: Database,
    pool: asyncpg.Pool,
    server: RedisServer,
    admin: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    readings = [make_reading("press-01", NOW - 1000, {"temp": 61.5}, type="cnc_spindle")]
    await database.write_readings(readings)
    async with LiveStore.from_url(server.url()) as live:
        assert await live.update_latest(readings)
    health = GatewayHealth.received(make_edge_metrics("gw-1", NOW), NOW)
    await admin.hset(GATEWAYS_KEY, "gw-1", encode_gateway_health(health))
    alert = await database.apply_alert(
        AlertTransition(
            kind="raised",
            device_id="press-01",
            gateway_id="gw-1",
            rule="temp.threshold",
            severity="warning",
            metric="temp",
            value=81.0,
            message="temp 81.0 above 80",
            ts=NOW,
        )
    )
    assert alert is not None
    await acl_setuser(admin, USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    client = redis_client(server.url(USER, PASSWORD))
    try:
        web = PostgresReadModel(pool, client)
        alerts = AlertService(Database(pool), RedisAlertEvents(client), PostgresAuditLog(pool))
        before = await web.device("press-01")
        assert before is not None
        assert before.latest == {"temp": 61.5}

        await acl_setuser(admin, USER, "resetchannels", "-@all")
        caplog.set_level(logging.WARNING, logger="hub.web.data")
        page = await web.devices(DeviceFilter())
        assert [(d.device_id, d.latest, d.latest_ts) for d in page.items] == [
            ("press-01", {}, None)
        ]
        assert await web.gateways() == []
        acked = await alerts.acknowledge(alert.id, Principal("olga", "operator"), None)
        assert acked is not None
        assert (acked.acknowledged, acked.ack_by) == (True, "olga")  # though its event was refused
        assert await web.ping() == {"postgres": True, "redis": False}
        rejected = events(caplog, "hub.web.data", "redis_rejected")
        assert [r.__dict__["op"] for r in rejected] == ["latest", "gateways", "publish_alert"]
        assert all(r.__dict__["error"].startswith("NOPERM") for r in rejected)
    finally:
        await client.aclose()
