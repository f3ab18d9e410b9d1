"""LiveStore's bookkeeping of refusals around outages, with a fake client and a fake clock (each
refusal as a real Redis gives it: tests/integration/test_hub_live_rejections.py)."""

from __future__ import annotations

import logging
from typing import cast

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from hub.storage.live import LiveStore, describe, reply_code
from hub.storage.redis_values import GatewayHealth
from tests.support.readings import make_edge_metrics
from tests.unit.test_hub_live import Clock

HEALTH = GatewayHealth.received(make_edge_metrics("gw-1", 1_764_268_800_000), 1_764_268_800_000)


class FakeRedis:
    """PUBLISH and HSET, each failing with what the test puts in `errors`."""

    def __init__(self) -> None:
        self.errors: dict[str, Exception] = {}

    async def publish(self, channel: str, message: str | bytes) -> int:
        if error := self.errors.get("publish"):
            raise error
        return 1

    async def hset(self, name: str, key: str, value: str) -> int:
        if error := self.errors.get("hset"):
            raise error
        return 1


def oom() -> redis_errors.ResponseError:
    # As redis-py's parser builds it from "-OOM command not allowed ...".
    return redis_errors.OutOfMemoryError(
        "command not allowed when used memory > 'maxmemory'.", status_code="OOM"
    )


async def test_an_outage_that_ends_in_a_refusal_is_two_episodes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, clock = FakeRedis(), Clock()
    store = LiveStore(cast(Redis, fake), probe_interval_s=1.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="hub.storage.live"):
        fake.errors["hset"] = fake.errors["publish"] = redis_errors.ConnectionError("refused")
        assert not await store.set_gateway_state(HEALTH)
        assert not await store.publish_alert("a")  # skipped: the outage holds back every op
        # Redis is back, out of memory: it answers (the outage is over) but refuses writes.
        fake.errors = {"hset": oom()}
        clock.now += 1
        assert not await store.set_gateway_state(HEALTH)
        assert await store.publish_alert("b")  # a refused write holds back nothing else
        assert not await store.set_gateway_state(HEALTH)  # skipped until its probe
        fake.errors = {}
        clock.now += 1
        assert await store.set_gateway_state(HEALTH)
    logged = [(r.getMessage(), r.__dict__.get("code")) for r in caplog.records]
    assert logged == [
        ("redis_unavailable", None),
        ("redis_recovered", None),
        ("redis_rejected", "OOM"),
        ("redis_recovered", "OOM"),
    ]
    assert caplog.records[2].__dict__["error"] == (
        "OOM command not allowed when used memory > 'maxmemory'."
    )
    assert store.stats.failed_total == 2
    assert store.stats.rejected_total == {"OOM": 1}
    assert store.stats.skipped_total == 2
    assert store.stats.outages_total == 1


def test_reply_codes() -> None:
    assert reply_code(oom()) == "OOM"
    assert reply_code(redis_errors.ResponseError("a reply without a code")) == "ResponseError"
    assert reply_code(redis_errors.DataError("Invalid input of type: 'dict'")) == "DataError"
    assert describe(redis_errors.ConnectionError("refused")) == "ConnectionError: refused"
