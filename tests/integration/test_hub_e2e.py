"""The whole pipeline as an operator runs it: the edge gateway with its five simulators (embedded
broker) -> Kafka -> `iot-hub worker` -> PostgreSQL rows and Redis keys."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from edge_gateway.simulators.catalog import DEVICE_ID_PREFIX
from hub.settings import HUB_DLQ_TOPIC
from hub.storage.redis_keys import LAST_SEEN_KEY, latest_key
from protocol import NormalisedReading
from tests.support.gateway import GatewayProcess
from tests.support.hub import (
    HubWorkerProcess,
    committed,
    committed_past,
    end_offsets,
    position_group,
    read_range,
)
from tests.support.kafka import ensure_topics, telemetry_readings
from tests.support.process import free_port
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

DEVICES = sorted(f"{prefix}-01" for prefix in DEVICE_ID_PREFIX.values())
Key = tuple[str, str, int]  # (device_id, metric, ts ms): the primary key of `readings`


def reading_keys(readings: list[NormalisedReading]) -> set[Key]:
    return {(r.device_id, metric, r.ts) for r in readings for metric in r.metrics}


async def stored_keys(pg: asyncpg.Connection) -> list[Key]:
    rows = await pg.fetch(
        "SELECT device_id, metric, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms FROM readings"
    )
    return [(r["device_id"], r["metric"], r["ts_ms"]) for r in rows]


async def test_simulators_through_gateway_and_hub_into_postgres_and_redis(
    kafka: str,
    redis_url: str,
    redis: Redis,
    fresh_database: str,
    pg_fresh: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    worker = HubWorkerProcess(tmp_path / "hub", kafka, redis_url, database_url=fresh_database)
    start = await end_offsets(kafka)
    await position_group(kafka, worker.group, start)
    gateway = GatewayProcess(
        tmp_path / "edge",
        {
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_SIMULATORS": "all",
            "EDGE_SIMULATOR_RATE_HZ": "10",
            "EDGE_SIMULATOR_ANOMALY_PROBABILITY": "0",
        },
    )
    try:
        worker.start()
        await asyncio.to_thread(gateway.start)

        async def every_device_stored() -> bool:
            stored = await pg_fresh.fetchval(
                "SELECT count(DISTINCT device_id) FROM readings WHERE device_id = ANY($1)",
                DEVICES,
            )
            latest = [await redis.exists(latest_key(device)) for device in DEVICES]
            return bool(stored == len(DEVICES) and all(latest))

        await async_wait_until(
            every_device_stored, 120, f"all five devices in readings and Redis ({worker.log_path})"
        )
        assert gateway.terminate() == 0

        # Everything the gateway produced is consumed and committed; SIGTERM then finishes the
        # batch in flight and commits it, so the committed offsets delimit exactly what the
        # worker wrote (any other producer's records in that range included).
        end = await end_offsets(kafka)
        await async_wait_until(
            lambda: committed_past(kafka, worker.group, end), 90, "the worker caught up"
        )
        assert await worker.stop() == 0
        done = await committed(kafka, worker.group)
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.kill()
        worker.cleanup()

    consumed = telemetry_readings(await read_range(kafka, start, done))
    ours = [r for r in consumed if r.site == site]
    assert {r.device_id for r in ours} == set(DEVICES)
    stored = await stored_keys(pg_fresh)
    assert len(stored) == len(set(stored))
    assert set(stored) == reading_keys(consumed)
    assert reading_keys(ours) <= set(stored)

    # Redis is shared and these device ids are every simulator's: the latest-values hash is
    # last-write-wins, but last-seen only moves forward, so it is at least our newest reading.
    for device in DEVICES:
        newest = max(r.ts for r in ours if r.device_id == device)
        assert await redis.exists(latest_key(device))
        assert (await redis.zscore(LAST_SEEN_KEY, device) or 0) >= newest
    assert worker.errors() == []
    assert "event=worker_stopped exit_code=0" in worker.log()
