"""A maintenance window that suppresses alerts, as `iot-hub worker` applies it against real Kafka,
PostgreSQL and Redis: no new alert while it is active, and the worker learns of a change
within seconds, without a restart (docs/alarms.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.alarms.postgres import PostgresAlarmStore
from hub.alarms.windows import Once, Scope, WindowSpec
from protocol import NormalisedReading, encode, topics
from tests.integration.test_hub_agents import send
from tests.support.hub import HubWorkerProcess
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

RULE = "cnc_spindle.spindle_temp_c.threshold"  # crit_high 85
HOUR = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def pool(blank_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(blank_database, min_size=1, max_size=2)
    yield p
    await p.close()


def hot(device_id: str, ts: int) -> NormalisedReading:
    return NormalisedReading(
        site="site-w",
        device_id=device_id,
        type="cnc_spindle",
        ts=ts,
        seq=None,
        metrics={"spindle_temp_c": 95.0},
        gateway_id="gw-w",
        received_ts=now_ms(),
    )


async def open_alerts(pool: asyncpg.Pool, device_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM alerts WHERE device_id = $1 AND state = 'active'", device_id
    )
    return count


async def test_a_window_holds_back_new_alerts_until_it_is_deleted(
    worker: HubWorkerProcess, kafka: str, pool: asyncpg.Pool
) -> None:
    device = f"cnc-{uuid.uuid4().hex[:8]}"
    worker.start(HUB_WINDOWS_RELOAD_S="1", HUB_DEVICE_OFFLINE_AFTER_S="600")

    async def ready() -> bool:
        assert worker.running(), worker.log()
        return worker.count("partitions_assigned") > 0 and worker.count("worker_ready") > 0

    await async_wait_until(ready, 60, f"worker ready (log {worker.log_path})")
    store = PostgresAlarmStore(pool)
    spec = WindowSpec(
        "spindle swap", "alerts", Once(now_ms() - HOUR, now_ms() + HOUR), Scope(sites=("site-w",))
    )
    window = await store.create_window(spec, "test")

    async def loaded(times: int) -> bool:
        return worker.count("maintenance_windows_loaded") >= times

    await async_wait_until(lambda: loaded(1), 15, "the worker to load the window")
    t0 = now_ms() - 60_000
    await send(kafka, topics.TELEMETRY, [(device, encode(hot(device, t0)))])

    async def held() -> bool:
        return worker.count("alert_held_back") >= 1

    await async_wait_until(held, 30, "the raise to be held back")
    assert await open_alerts(pool, device) == 0

    await store.delete_window(window.id)
    await async_wait_until(lambda: loaded(2), 15, "the worker to see the window gone")
    await send(kafka, topics.TELEMETRY, [(device, encode(hot(device, t0 + 1000)))])

    async def raised() -> bool:
        return await open_alerts(pool, device) == 1

    await async_wait_until(raised, 30, "the alert raised once the window is gone")
    row = await pool.fetchrow("SELECT id, rule FROM alerts WHERE device_id = $1", device)
    assert row["rule"] == RULE

    # A shelf that runs out is announced on the live channel by the worker's timer.
    await store.shelve_alert(row["id"], "olga", "brief", now_ms() + 1500)

    async def expired() -> bool:
        return worker.count("alert_shelf_expired") >= 1

    await async_wait_until(expired, 15, "the shelf's end to be published")
    assert await worker.stop() == 0
    assert not worker.errors()
