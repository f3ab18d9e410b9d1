"""Fan-out delivery without Redis: who gets what, and what a slow subscriber costs (itself)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.storage.live_feed import RedisLiveFeed
from hub.storage.live_messages import LiveReading
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL
from hub.web.fanout import LiveEvent, LiveFanout, parse_message


@pytest.fixture
async def fanout() -> AsyncIterator[LiveFanout]:
    # Never started: nothing connects, `publish` is driven by the test.
    fan = LiveFanout(RedisLiveFeed(Redis(host="127.0.0.1", port=1)), queue_size=3)
    yield fan
    await fan.stop()


def readings(*device_ids: str) -> LiveEvent:
    items = [LiveReading("s", d, None, i, None, {}) for i, d in enumerate(device_ids)]
    return LiveEvent("readings", items, None)


ALERT = LiveEvent("alert", [], {"v": 1, "event": "raised", "id": 1, "device_id": "a"})


async def test_each_subscriber_gets_what_it_asked_for(fanout: LiveFanout) -> None:
    everything = fanout.subscribe()
    only_a = fanout.subscribe(devices=frozenset({"a"}), alerts=False)
    alerts_only = fanout.subscribe(devices=frozenset())
    fanout.publish(readings("a", "b", "a"))
    fanout.publish(ALERT)

    assert everything.get_nowait() == readings("a", "b", "a")
    assert everything.get_nowait() == ALERT
    got = only_a.get_nowait()
    assert got is not None
    assert [r.device_id for r in got.readings] == ["a", "a"]
    assert only_a.get_nowait() is None  # no alert: it asked for none
    assert alerts_only.get_nowait() == ALERT
    assert alerts_only.get_nowait() is None
    assert fanout.stats.delivered_total == 4


async def test_a_full_queue_drops_that_subscriber_only(fanout: LiveFanout) -> None:
    slow = fanout.subscribe()
    fast = fanout.subscribe()
    received = []
    for i in range(10):
        fanout.publish(readings(f"d{i}"))
        event = fast.get_nowait()
        assert event is not None
        received.append(event.readings[0].device_id)

    assert received == [f"d{i}" for i in range(10)]
    assert slow.dropped
    assert not fast.dropped
    assert fanout.stats.dropped_subscribers_total == 1
    assert fanout.stats.subscribers == 1
    assert [e async for e in slow] == []  # its iterator ends at once, queued events discarded


async def test_close_ends_a_waiting_iterator(fanout: LiveFanout) -> None:
    sub = fanout.subscribe()

    async def drain() -> list[LiveEvent]:
        return [e async for e in sub]

    task = asyncio.create_task(drain())
    fanout.publish(ALERT)
    await asyncio.sleep(0)  # let the reader take the event and wait for the next
    sub.close()
    assert await asyncio.wait_for(task, timeout=5) == [ALERT]
    assert not sub.dropped
    assert fanout.stats.subscribers == 0


async def test_context_manager_unsubscribes(fanout: LiveFanout) -> None:
    async with fanout.subscribe() as sub:
        assert fanout.stats.subscribers == 1
    assert sub.closed
    assert fanout.stats.subscribers == 0


def test_parse_message() -> None:
    reading = {"site": "s", "device_id": "a", "type": None, "ts": 5, "seq": None}
    body = {"v": 1, "readings": [{**reading, "metrics": {"t": 1}}, "junk"]}
    event = parse_message(READINGS_CHANNEL, json.dumps(body).encode())
    assert event == LiveEvent("readings", [LiveReading("s", "a", None, 5, None, {"t": 1})], None)
    alert = {"v": 1, "event": "acknowledged", "id": 4}
    assert parse_message(ALERTS_CHANNEL, json.dumps(alert)) == LiveEvent("alert", [], alert)
    assert parse_message(READINGS_CHANNEL, b"not json") is None
    assert parse_message(READINGS_CHANNEL, b"[1]") is None
    assert parse_message(READINGS_CHANNEL, b'{"readings": 3}') is None
    assert parse_message("elsewhere", b"{}") is None
    assert parse_message(ALERTS_CHANNEL, b"\xff") is None
