"""LiveStore against a real Redis, including Redis going away and coming back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from hub.storage.live import LiveStore
from hub.storage.redis_keys import (
    ALERTS_CHANNEL,
    DEVICE_STATE_KEY,
    LAST_SEEN_KEY,
    READINGS_CHANNEL,
    latest_key,
)
from protocol import NormalisedReading
from tests.support.services import run_services
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

T0 = 1_764_268_800_000


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[LiveStore]:
    live = LiveStore.from_url(redis_url, probe_interval_s=0.2)
    yield live
    await live.aclose()


@pytest.fixture
async def devices(redis: Redis) -> AsyncIterator[list[str]]:
    """Device ids unique to this test; their keys are removed afterwards."""
    ids = [f"dev-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    yield ids
    await redis.delete(*(latest_key(d) for d in ids))
    await redis.zrem(LAST_SEEN_KEY, *ids)
    await redis.hdel(DEVICE_STATE_KEY, *ids)


def reading(device_id: str, at: int, **metrics: float | bool) -> NormalisedReading:
    return NormalisedReading(
        site="site-1",
        device_id=device_id,
        type="cnc_spindle",
        ts=at,
        seq=at - T0,
        metrics=metrics,
        gateway_id="gw-1",
        received_ts=at + 3,
    )


async def test_latest_values_and_last_seen(
    store: LiveStore, redis: Redis, devices: list[str]
) -> None:
    a, b, _ = devices
    batch = [
        reading(a, T0 + 2000, spindle_temp_c=62.0),
        reading(a, T0 + 1000, spindle_temp_c=61.0, running=True),  # older, same batch
        reading(b, T0 + 500, ts=1.5),  # a metric may be called "ts"
    ]
    assert await store.update_latest(batch)
    assert await redis.hgetall(latest_key(a)) == {
        "spindle_temp_c": "62.0",
        "running": "true",
        "_ts": str(T0 + 2000),
        "_site": "site-1",
        "_type": "cnc_spindle",
    }
    latest_b = await redis.hgetall(latest_key(b))
    assert latest_b["ts"] == "1.5"
    assert latest_b["_ts"] == str(T0 + 500)
    assert await redis.zscore(LAST_SEEN_KEY, a) == T0 + 2000

    # A replayed, older batch does not move last-seen back.
    assert await store.update_latest([reading(a, T0 + 10, spindle_temp_c=1.0)])
    assert await redis.zscore(LAST_SEEN_KEY, a) == T0 + 2000


async def test_published_readings_and_alerts(
    store: LiveStore, redis: Redis, devices: list[str]
) -> None:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(READINGS_CHANNEL, ALERTS_CHANNEL)
        await _next_message(pubsub, "subscribe")
        await _next_message(pubsub, "subscribe")
        batch = [reading(devices[i % 3], T0 + i, load_pct=float(i)) for i in range(1200)]
        assert await store.publish_readings(batch)
        assert await store.publish_alert('{"kind":"raised","device_id":"x"}')
        messages = [await _next_message(pubsub, "message") for _ in range(4)]
    readings_msgs = [m for m in messages if m["channel"] == READINGS_CHANNEL]
    chunks = [json.loads(m["data"]) for m in readings_msgs]
    assert [len(c["readings"]) for c in chunks] == [500, 500, 200]
    assert chunks[0]["v"] == 1
    first = chunks[0]["readings"][0]
    assert first == {
        "site": "site-1",
        "device_id": devices[0],
        "type": "cnc_spindle",
        "ts": T0,
        "seq": 0,
        "metrics": {"load_pct": 0.0},
    }
    assert " " not in readings_msgs[0]["data"]  # compact
    alerts = [m["data"] for m in messages if m["channel"] == ALERTS_CHANNEL]
    assert alerts == ['{"kind":"raised","device_id":"x"}']


async def test_device_state(store: LiveStore, redis: Redis, devices: list[str]) -> None:
    assert await store.set_device_state(devices[0], "site-1", "gw-1", "offline", T0)
    assert json.loads(await redis.hget(DEVICE_STATE_KEY, devices[0]) or "null") == {
        "state": "offline",
        "ts": T0,
        "site": "site-1",
        "gateway_id": "gw-1",
    }


async def test_redis_outage_never_stops_the_caller(
    store: LiveStore, redis: Redis, devices: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    device = devices[0]
    assert await store.update_latest([reading(device, T0, load_pct=1.0)])
    caplog.set_level(logging.INFO, logger="hub.storage.live")
    await asyncio.to_thread(run_services, "stop", "redis")
    try:
        started = time.monotonic()
        for i in range(20):
            assert not await store.update_latest([reading(device, T0 + i, load_pct=2.0)])
            assert not await store.publish_readings([reading(device, T0 + i, load_pct=2.0)])
        assert time.monotonic() - started < 5  # refused fast, then skipped between probes
        assert not store.available
        assert store.stats.failed_total >= 1
        assert store.stats.failed_total + store.stats.skipped_total == 40
    finally:
        await asyncio.to_thread(run_services, "start", "redis")

    # It reconnects by itself: the next probe that finds Redis up goes through.
    async def written() -> bool:
        return await store.update_latest([reading(device, T0 + 100, load_pct=3.0)])

    await async_wait_until(written, 30, "LiveStore reconnected")
    assert store.available
    assert (await redis.hgetall(latest_key(device)))["load_pct"] == "3.0"
    events = [r.getMessage() for r in caplog.records if r.name == "hub.storage.live"]
    assert events == ["redis_unavailable", "redis_recovered"]


async def _next_message(pubsub: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == kind:
            result: dict[str, Any] = message
            return result
    raise TimeoutError(f"no {kind} message within {timeout} s")
