"""Device metadata from the edge through a real `iot-hub worker` into PostgreSQL: a report on
`iot.device-metadata` becomes the device's edge layer; a bad one is dead-lettered and the worker
goes on."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from hub.settings import HUB_DLQ_TOPIC
from protocol import topics
from protocol.device_metadata import DeviceMetadataReport, device_metadata_record
from tests.support.hub import HubWorkerProcess, position_group_at_end, produce
from tests.support.kafka import ensure_topics
from tests.support.process import free_port
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def worker(
    tmp_path: Path, kafka: str, redis_url: str, redis: Redis
) -> AsyncIterator[HubWorkerProcess]:
    await ensure_topics(kafka, [HUB_DLQ_TOPIC, topics.UNPREFIXED.device_metadata])
    process = HubWorkerProcess(tmp_path, kafka, redis_url)
    await position_group_at_end(kafka, process.group)
    await position_group_at_end(kafka, process.group, topics.UNPREFIXED.device_metadata)
    yield process
    process.cleanup()


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def test_edge_reports_reach_postgres_and_bad_ones_are_dead_lettered(
    worker: HubWorkerProcess, kafka: str, postgres: str, pg: asyncpg.Connection
) -> None:
    device = f"press-{uuid.uuid4().hex[:6]}"
    port = free_port()
    worker.start(HUB_DATABASE_URL=postgres, HUB_WORKER_WEB_PORT=str(port))
    await async_wait_until(
        lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 60, "the worker ready on /readyz"
    )
    report = DeviceMetadataReport.model_validate(
        {
            "site": "plant-a",
            "device_id": device,
            "gateway_id": "gw-1",
            "ts": int(time.time() * 1000),
            "source": "sparkplug",
            "line": "Line 2",
            "metrics": {"ram_pressure_bar": {"unit": "psi", "source_name": "Ram/Pressure"}},
        }
    )
    await produce(
        kafka,
        [(device.encode(), b'{"v": 1, "device_id": "broken"'), device_metadata_record(report)],
        topic=topics.UNPREFIXED.device_metadata,
    )

    async def stored() -> bool:
        row = await pg.fetchrow(
            "SELECT source, updated_by, document FROM device_metadata WHERE key = $1", device
        )
        return row is not None and row["updated_by"] == "sparkplug@gw-1"

    await async_wait_until(stored, 90, f"the report in device_metadata (log {worker.log_path})")
    document = await pg.fetchval(
        "SELECT document->'metrics'->'ram_pressure_bar'->>'unit' FROM device_metadata "
        "WHERE key = $1 AND source = 'edge'",
        device,
    )
    assert document == "psi"
    assert worker.count("undecodable_device_metadata_dead_lettered") >= 1
    assert worker.running()
