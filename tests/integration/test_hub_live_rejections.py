"""LiveStore, and ingest through it, against a real Redis that answers but refuses: out of memory
(maxmemory with noeviction), a read-only replica, an ACL user without the rights. Redis holds
nothing PostgreSQL cannot rebuild, so a refusal is counted and logged once, never raised.

Each test runs a redis-server of its own (the shared one must never be put in these states),
and LiveStore runs on a fake clock, so that each call below is an attempt, not left to the
probe timer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.agents.ingest import IngestCounters, ingest_batch
from hub.agents.retry import Retrier
from hub.storage.live import LiveStore
from hub.storage.postgres import Database
from hub.storage.redis_keys import DEVICE_STATE_KEY, GATEWAYS_KEY, LAST_SEEN_KEY, latest_key
from hub.storage.redis_values import GatewayHealth, encode_gateway_health
from protocol import NormalisedReading, encode
from tests.support.process import free_port
from tests.support.readings import make_edge_metrics, make_reading
from tests.support.redis_server import RedisServer, acl_setuser, redis_server

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)
USER, PASSWORD = "hub", "hub-secret"
OPS = (
    "update_latest",
    "publish_readings",
    "publish_alert",
    "set_device_state",
    "set_gateway_state",
    "gateway_heartbeats",
)
WRITES = frozenset({"update_latest", "set_device_state", "set_gateway_state"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def past_every_probe(self) -> None:
        self.now += 60  # beyond probe_max_s


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


@pytest.fixture
async def admin(server: RedisServer) -> AsyncIterator[Redis]:
    """A client as the server's default user. It creates the hub's user, with every right until
    a test takes some away, and one gateway's heartbeat."""
    client = Redis.from_url(server.url(), decode_responses=True)
    await acl_setuser(client, USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    health = GatewayHealth.received(make_edge_metrics("gw-1", NOW), NOW + 5)
    await client.hset(GATEWAYS_KEY, "gw-1", encode_gateway_health(health))
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(server: RedisServer, admin: Redis, clock: Clock) -> AsyncIterator[LiveStore]:
    client = Redis.from_url(server.url(USER, PASSWORD), socket_connect_timeout=2, socket_timeout=2)
    live = LiveStore(client, probe_interval_s=1.0, probe_max_s=30.0, clock=clock)
    yield live
    await live.aclose()


def reading(device_id: str, n: int) -> NormalisedReading:
    return make_reading(device_id, NOW + n, {"temp_c": 20.0 + n}, type="cnc_spindle", seq=n)


async def attempt(store: LiveStore, op: str, n: int) -> bool:
    """One call of `op` (the n-th); True if it went through."""
    if op == "update_latest":
        return await store.update_latest([reading("press-01", n)])
    if op == "publish_readings":
        return await store.publish_readings([reading("press-01", n)])
    if op == "publish_alert":
        return await store.publish_alert('{"v":1,"event":"raised"}')
    if op == "set_device_state":
        return await store.set_device_state("press-01", "site-1", "gw-1", "online", NOW + n)
    if op == "set_gateway_state":
        return await store.set_gateway_state(
            GatewayHealth.received(make_edge_metrics("gw-2", NOW), NOW)
        )
    assert op == "gateway_heartbeats"
    return ("gw-1", NOW) in await store.gateway_heartbeats()  # [] when refused


# -- how each refusal happens in production, and how it ends -----------------------------------


async def out_of_memory(admin: Redis) -> None:
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", 1)  # below what the data already uses


async def memory_back(admin: Redis) -> None:
    await admin.config_set("maxmemory", 0)


async def replica_of_nothing(admin: Redis) -> None:
    # A master that is not there: the replica keeps its data, serves reads and stays read-only.
    await admin.replicaof("127.0.0.1", free_port())


async def master_again(admin: Redis) -> None:
    await admin.replicaof("NO", "ONE")


async def no_rights(admin: Redis) -> None:
    await acl_setuser(admin, USER, "resetchannels", "-@all")


async def rights_back(admin: Redis) -> None:
    await acl_setuser(admin, USER, "allchannels", "+@all")


@dataclass(frozen=True)
class Refusal:
    code: str  # the reply's first word
    error: str  # how the reply starts
    impose: Callable[[Redis], Awaitable[None]]
    lift: Callable[[Redis], Awaitable[None]]
    refused: frozenset[str]  # the ops refused meanwhile; the others go through


REFUSALS = [
    Refusal(
        "OOM",
        "OOM command not allowed when used memory > 'maxmemory'",
        out_of_memory,
        memory_back,
        WRITES,  # reads and PUBLISH keep nothing in memory
    ),
    Refusal(
        "READONLY",
        "READONLY You can't write against a read only replica",
        replica_of_nothing,
        master_again,
        WRITES,
    ),
    Refusal(
        "NOPERM",
        "NOPERM this user has no permissions to run the",
        no_rights,
        rights_back,
        frozenset(OPS),
    ),
]


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hub.storage.live" and r.getMessage() == name]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.code for r in REFUSALS])
async def test_refused_ops_fail_quietly_once_logged_and_recover(
    refusal: Refusal,
    store: LiveStore,
    admin: Redis,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert all([await attempt(store, op, 0) for op in OPS])  # data exists before the refusal
    await refusal.impose(admin)
    caplog.set_level(logging.INFO, logger="hub.storage.live")

    attempts = 3
    for n in range(1, attempts + 1):
        clock.past_every_probe()
        for op in OPS:  # right after a refused op: the ones Redis allows are not held back
            assert await attempt(store, op, n) == (op not in refusal.refused), (op, n)

    refused_calls = attempts * len(refusal.refused)
    assert store.stats.rejected_total == {refusal.code: refused_calls}
    assert store.stats.failed_total == refused_calls
    assert store.stats.skipped_total == 0
    assert store.available  # Redis answers: no outage
    assert store.rejected_ops == refusal.refused
    rejected = events(caplog, "redis_rejected")
    assert sorted(r.__dict__["op"] for r in rejected) == sorted(refusal.refused)  # once each
    assert {r.__dict__["code"] for r in rejected} == {refusal.code}
    assert all(r.__dict__["error"].startswith(refusal.error) for r in rejected)
    assert not events(caplog, "redis_recovered")
    assert not events(caplog, "redis_unavailable")

    # Between probes a refused op is not even tried.
    refused_op = sorted(refusal.refused)[0]
    assert not await attempt(store, refused_op, 90)
    assert store.stats.skipped_total == 1

    await refusal.lift(admin)
    clock.past_every_probe()
    for op in OPS:
        assert await attempt(store, op, 100), op
    assert store.rejected_ops == frozenset()
    recovered = events(caplog, "redis_recovered")
    assert sorted(r.__dict__["op"] for r in recovered) == sorted(refusal.refused)
    assert {r.__dict__["code"] for r in recovered} == {refusal.code}
    assert len(events(caplog, "redis_rejected")) == len(refusal.refused)
    # What was refused is written now.
    latest = await admin.hgetall(latest_key("press-01"))
    assert latest["_ts"] == str(NOW + 100)
    state = json.loads(await admin.hget(DEVICE_STATE_KEY, "press-01") or "null")
    assert state["ts"] == NOW + 100


async def test_a_pipeline_partly_refused_fails_as_a_whole(
    store: LiveStore, admin: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # The latest-value hashes allowed, the last-seen set not: the pipeline's HSETs go through
    # and its ZADD is refused.
    await acl_setuser(admin, USER, "resetkeys", "~iot:latest:*")
    caplog.set_level(logging.INFO, logger="hub.storage.live")

    assert not await store.update_latest([reading("press-01", 1), reading("press-02", 2)])

    assert await admin.hget(latest_key("press-02"), "_ts") == str(NOW + 2)
    assert await admin.zscore(LAST_SEEN_KEY, "press-02") is None
    assert store.stats.rejected_total == {"NOPERM": 1}
    assert store.rejected_ops == {"update_latest"}
    (rejected,) = events(caplog, "redis_rejected")
    assert rejected.__dict__["error"].startswith(
        "NOPERM this user has no permissions to access one of the keys"
    )


async def test_ingest_writes_every_reading_to_postgres_while_redis_is_out_of_memory(
    database: Database, pg: asyncpg.Connection, store: LiveStore, admin: Redis
) -> None:
    await out_of_memory(admin)
    batch = [reading(f"press-{d}", n) for d in range(3) for n in range(10)]
    counters = IngestCounters()

    class NoDeadLetters:
        async def send(self, value: bytes, *, error: str) -> None:
            raise AssertionError(f"dead-lettered: {error}")

    await ingest_batch(
        [encode(r) for r in batch],
        db=database,
        live=store,
        dlq_producer=NoDeadLetters(),
        counters=counters,
        retrier=Retrier(),
    )

    assert counters.batches_total == 1
    assert counters.readings_total == 30
    assert await pg.fetchval("SELECT count(*) FROM readings") == 30
    assert await pg.fetchval("SELECT count(*) FROM devices") == 3
    assert store.stats.rejected_total == {"OOM": 1}  # update_latest; the PUBLISH went through
    assert await admin.exists(latest_key("press-0")) == 0
