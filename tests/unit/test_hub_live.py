"""LiveStore's outage handling with a fake client and a fake clock (real Redis: integration)."""

from __future__ import annotations

import itertools
import logging
from typing import cast

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from hub.storage.live import LiveStore
from hub.storage.redis_keys import ALERTS_CHANNEL, DEVICE_STATE_KEY
from hub.storage.redis_values import GatewayHealth, encode_gateway_health
from tests.support.readings import make_edge_metrics


class FakeRedis:
    def __init__(self) -> None:
        self.down = False
        self.attempts = 0
        self.published: list[tuple[str, str | bytes]] = []
        self.hashes: dict[str, dict[str, str]] = {}

    def _check(self) -> None:
        self.attempts += 1
        if self.down:
            raise redis_errors.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    async def publish(self, channel: str, message: str | bytes) -> int:
        self._check()
        self.published.append((channel, message))
        return 1

    async def hset(self, name: str, key: str, value: str) -> int:
        self._check()
        self.hashes.setdefault(name, {})[key] = value
        return 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(fake: FakeRedis, clock: Clock) -> LiveStore:
    return LiveStore(cast(Redis, fake), probe_interval_s=1.0, clock=clock)


async def test_calls_go_through_when_redis_is_up(store: LiveStore, fake: FakeRedis) -> None:
    assert await store.publish_alert('{"kind":"raised"}')
    assert await store.set_device_state("press-01", "site-1", "gw-1", "offline", 1_764_268_800_000)
    assert fake.published == [(ALERTS_CHANNEL, '{"kind":"raised"}')]
    assert fake.hashes[DEVICE_STATE_KEY]["press-01"] == (
        '{"state":"offline","ts":1764268800000,"site":"site-1","gateway_id":"gw-1"}'
    )
    assert store.available
    assert store.stats.calls_total == 2
    assert store.stats.failed_total == 0


async def test_outage_is_logged_once_skipped_between_probes_and_recovers(
    store: LiveStore, fake: FakeRedis, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.down = True
    with caplog.at_level(logging.INFO, logger="hub.storage.live"):
        assert not await store.publish_alert("a")
        assert not store.available
        # Within the probe interval nothing reaches for Redis.
        for _ in range(5):
            assert not await store.publish_alert("b")
        assert fake.attempts == 1
        clock.now += 1.5
        assert not await store.set_device_state("press-01", "site-1", "gw-1", "online", 1)
        assert fake.attempts == 2  # a probe, still down: the next one waits twice as long
        fake.down = False
        clock.now += 1.5
        assert not await store.publish_alert("c")  # skipped: next probe due at 103.5
        clock.now += 0.5
        assert await store.publish_alert("d")
    assert store.available
    assert [m for _, m in fake.published] == ["d"]
    assert store.stats.failed_total == 2
    assert store.stats.skipped_total == 6
    assert store.stats.outages_total == 1
    events = [r.getMessage() for r in caplog.records]
    assert events == ["redis_unavailable", "redis_recovered"]
    assert caplog.records[0].levelno == logging.WARNING
    assert "ConnectionError" in caplog.records[0].__dict__["error"]
    assert caplog.records[1].__dict__["down_s"] == 3.5


async def test_a_second_outage_is_logged_again(
    store: LiveStore, fake: FakeRedis, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hub.storage.live"):
        for _ in range(2):
            fake.down = True
            await store.publish_alert("x")
            clock.now += 2
            fake.down = False
            assert await store.publish_alert("y")
    assert [r.getMessage() for r in caplog.records] == ["redis_unavailable"] * 2
    assert store.stats.outages_total == 2


async def test_empty_batches_do_not_touch_redis(store: LiveStore, fake: FakeRedis) -> None:
    assert await store.update_latest([])
    assert await store.publish_readings([])
    assert fake.attempts == 0


async def test_probes_back_off_up_to_a_cap(fake: FakeRedis, clock: Clock) -> None:
    store = LiveStore(cast(Redis, fake), probe_interval_s=1.0, probe_max_s=4.0, clock=clock)
    fake.down = True
    probes_at: list[float] = []
    for _ in range(200):
        before = fake.attempts
        await store.publish_alert("x")
        if fake.attempts > before:
            probes_at.append(clock.now)
        clock.now += 0.25
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(probes_at)]
    assert gaps[:4] == [1.0, 2.0, 4.0, 4.0]
    assert set(gaps[2:]) == {4.0}


def test_shared_heartbeats_take_the_earlier_clock_and_skip_bad_entries() -> None:
    from hub.storage.live import _parse_heartbeats

    def stored(gateway_id: str, ts: int, received_ts: int) -> str:
        health = GatewayHealth.received(make_edge_metrics(gateway_id, ts), received_ts)
        return encode_gateway_health(health)

    entries = {
        b"gw-1": stored("gw-1", 1000, 1200).encode(),
        "gw-2": stored("gw-2", 5000, 4000),  # gateway clock ahead: the hub's wins
        b"gw-bad": b"not json",
        b"gw-partial": b'{"ts": 1000}',
    }
    assert sorted(_parse_heartbeats(entries)) == [("gw-1", 1000), ("gw-2", 4000)]
