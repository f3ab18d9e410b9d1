"""LiveFanout against a real Redis: one subscription for many subscribers, slow ones dropped
without holding up the rest, and the subscription surviving a killed connection and a Redis
restart.

The shared Redis carries everyone's live traffic, so each subscriber here asks for this test's
own device ids only (the fan-out's filter), and the restart test runs a Redis of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hub.storage.live_feed import RedisLiveFeed
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL
from hub.web.fanout import LiveEvent, LiveFanout, Subscription
from tests.support.process import free_port
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration


def readings_message(device_id: str, seq: int) -> str:
    reading = {"site": "s", "device_id": device_id, "type": None, "ts": seq, "seq": seq}
    return json.dumps({"v": 1, "readings": [{**reading, "metrics": {"n": seq}}]})


async def fanout_on(url: str, queue_size: int, name: str) -> LiveFanout:
    client = Redis.from_url(url, client_name=name, socket_connect_timeout=2)
    feed = RedisLiveFeed(client, backoff_initial_s=0.05, backoff_max_s=0.5)
    fanout = LiveFanout(feed, queue_size=queue_size)
    await fanout.start()
    await fanout.wait_subscribed(timeout=10)
    return fanout


async def subscribers_on_redis(redis: Redis, name: str) -> int:
    """Connections named `name` that hold a subscription, as Redis itself sees them."""
    clients = await redis.client_list(_type="pubsub")
    return sum(1 for c in clients if c.get("name") == name)


async def collect(sub: Subscription, count: int, timeout: float = 10) -> list[LiveEvent]:
    got: list[LiveEvent] = []
    async with asyncio.timeout(timeout):
        async for event in sub:
            got.append(event)
            if len(got) == count:
                break
    return got


def seqs(events: list[LiveEvent]) -> list[int | None]:
    return [r.seq for e in events for r in e.readings]


@pytest.fixture
async def fanout(redis_url: str) -> AsyncIterator[tuple[LiveFanout, str]]:
    name = f"fanout-{uuid.uuid4().hex[:8]}"
    fan = await fanout_on(redis_url, queue_size=20, name=name)
    yield fan, name
    await fan.stop()


async def test_one_subscription_serves_many_and_a_slow_one_is_dropped(
    fanout: tuple[LiveFanout, str], redis: Redis
) -> None:
    fan, name = fanout
    device = f"dev-{uuid.uuid4().hex[:8]}"
    mine = frozenset({device})
    fast = [fan.subscribe(devices=mine, alerts=False) for _ in range(50)]
    slow = fan.subscribe(devices=mine, alerts=False)  # never reads
    assert await subscribers_on_redis(redis, name) == 1  # 51 subscribers, one subscription

    total = 100  # five times the queue size
    readers = [asyncio.create_task(collect(sub, total)) for sub in fast]
    for seq in range(total):
        await redis.publish(READINGS_CHANNEL, readings_message(device, seq))
    results = await asyncio.gather(*readers)

    assert all(seqs(events) == list(range(total)) for events in results)
    assert slow.dropped
    assert [e async for e in slow] == []  # its iterator has ended
    assert not any(sub.dropped for sub in fast)
    assert fan.stats.dropped_subscribers_total == 1
    assert fan.stats.subscribers == 50
    for sub in fast:
        sub.close()
    assert fan.stats.subscribers == 0


async def test_alert_events_reach_subscribers_that_want_them(
    fanout: tuple[LiveFanout, str], redis: Redis
) -> None:
    fan, _ = fanout
    device = f"dev-{uuid.uuid4().hex[:8]}"
    wants = fan.subscribe(devices=frozenset({device}))
    event = {"v": 1, "event": "acknowledged", "id": 7, "device_id": device}
    await redis.publish(ALERTS_CHANNEL, json.dumps(event))

    async def mine() -> LiveEvent:
        while True:
            got = await anext(wants)
            if got.alert is not None and got.alert.get("device_id") == device:
                return got  # others' alerts on the shared channel come too

    assert await asyncio.wait_for(mine(), timeout=10) == LiveEvent("alert", [], event)
    wants.close()


async def test_survives_its_connection_being_killed(
    fanout: tuple[LiveFanout, str], redis: Redis
) -> None:
    fan, name = fanout
    device = f"dev-{uuid.uuid4().hex[:8]}"
    sub = fan.subscribe(devices=frozenset({device}), alerts=False)
    (victim,) = [c for c in await redis.client_list(_type="pubsub") if c.get("name") == name]
    assert await redis.client_kill_filter(_id=victim["id"]) == 1

    async def back() -> bool:
        return fan.stats.redis_reconnects_total >= 1 and fan.connected

    await async_wait_until(back, timeout=15, what="fan-out resubscribed")
    await redis.publish(READINGS_CHANNEL, readings_message(device, 1))
    assert seqs(await collect(sub, 1)) == [1]
    assert not sub.dropped  # subscribers live through the reconnect


# -- a Redis of the test's own, restarted ------------------------------------------------------


class OwnRedis:
    """A redis-server on a free loopback port, no persistence; stop and start on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = {"port": self.port, "bind": "127.0.0.1", "appendonly": "no", "dir": self.workdir}
        args = [item for name, value in options.items() for item in (f"--{name}", str(value))]
        self.proc = subprocess.Popen(
            ["redis-server", *args, "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=15, what=f"redis-server on {self.port}")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "PING"], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_survives_a_redis_restart(own_redis: OwnRedis) -> None:
    fan = await fanout_on(own_redis.url, queue_size=100, name="fanout-restart")
    try:
        sub = fan.subscribe(devices=frozenset({"d"}), alerts=False)
        await publish_once(own_redis.url, readings_message("d", 1))
        assert seqs(await collect(sub, 1)) == [1]

        await asyncio.to_thread(own_redis.stop)

        async def lost() -> bool:
            return not fan.connected

        await async_wait_until(lost, timeout=15, what="fan-out noticed Redis is gone")
        await asyncio.to_thread(own_redis.start)
        await fan.wait_subscribed(timeout=15)

        await publish_once(own_redis.url, readings_message("d", 2))
        assert seqs(await collect(sub, 1)) == [2]
        assert fan.stats.redis_reconnects_total >= 1
        assert not sub.dropped
    finally:
        await fan.stop()


async def publish_once(url: str, message: str) -> None:
    publisher = Redis.from_url(url)
    try:
        await publisher.publish(READINGS_CHANNEL, message)
    finally:
        await publisher.aclose()
