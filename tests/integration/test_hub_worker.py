"""The hub's Faust worker as a real process against real Kafka 4 and Redis.

Most tests run the worker over a stand-in database that records its writes in Redis and can be
made to fail (`tests.support.hub.RedisBackedDb`), started through `hub.cli.run_worker` exactly
as `iot-hub worker` starts it; the last one runs `iot-hub worker` itself into PostgreSQL. Each
test uses its own consumer group, positioned at the end of `iot.telemetry` first, and its own
device ids, so records of other tests do not matter.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from hub.settings import HUB_DLQ_TOPIC
from hub.storage.redis_keys import latest_key
from protocol import NormalisedReading, encode
from tests.support.hub import (
    DB_BUG,
    DB_DOWN,
    HubWorkerProcess,
    committed,
    position_group_at_end,
    produce,
)
from tests.support.kafka import KafkaTail, ensure_topics
from tests.support.process import free_port
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration

T0 = 1_764_268_800_000


@pytest.fixture
async def worker(
    tmp_path: Path, kafka: str, redis_url: str, redis: Redis
) -> AsyncIterator[HubWorkerProcess]:
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    process = HubWorkerProcess(tmp_path, kafka, redis_url)
    await position_group_at_end(kafka, process.group)
    yield process
    process.cleanup()
    keys = [k async for k in redis.scan_iter(f"{process.prefix}:*")]
    if keys:
        await redis.delete(*keys)


def telemetry(device_id: str, i: int) -> NormalisedReading:
    return NormalisedReading(
        site="site-1",
        device_id=device_id,
        type="conveyor",
        ts=T0 + i * 1000,
        seq=i,
        metrics={"belt_speed_m_s": 1.0 + i / 100, "running": True},
        gateway_id="gw-test",
        received_ts=T0 + i * 1000 + 7,
    )


def readings_for(devices: Sequence[str], per_device: int) -> list[tuple[bytes | None, bytes]]:
    return [
        (device.encode(), encode(telemetry(device, i)))
        for i in range(per_device)
        for device in devices
    ]


async def rows_of(redis: Redis, prefix: str, devices: Sequence[str]) -> list[str]:
    rows = [str(row) for row in await redis.lrange(f"{prefix}:rows", 0, -1)]
    return [row for row in rows if row.split(":", 1)[0] in devices]


# -- tests -------------------------------------------------------------------------------------


async def test_worker_ingests_dead_letters_commits_and_stops_on_sigterm(
    worker: HubWorkerProcess, kafka: str, redis: Redis
) -> None:
    devices = [f"conv-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    bad = [
        f"not json {uuid.uuid4().hex}".encode(),
        b'{"v": 1, "site": "s"}' + uuid.uuid4().hex.encode(),
    ]
    worker.start(real=False)
    async with KafkaTail(kafka, [HUB_DLQ_TOPIC]) as dlq:
        spans = await produce(kafka, [*readings_for(devices, 40), *((None, b) for b in bad)])

        async def all_written() -> bool:
            return len(await rows_of(redis, worker.prefix, devices)) == 120

        await async_wait_until(all_written, 90, f"120 readings written (log {worker.log_path})")
        dead = await dlq.collect_until(
            lambda recs: sum(r.value in bad for r in recs) == 2, 30, "2 dead letters"
        )
    ours = [r for r in dead if r.value in bad]
    headers = [dict(r.headers) for r in ours]
    assert all(h["error"].startswith((b"invalid_json: ", b"wrong_shape: ")) for h in headers)

    # Redis: latest values per device, written after the database.
    latest = await redis.hgetall(latest_key(devices[0]))
    assert latest["_ts"] == str(T0 + 39_000)
    assert latest["running"] == "true"
    assert await redis.zscore("iot:last_seen", devices[2]) == T0 + 39_000

    # Offsets: committed past everything produced (Faust commits every 2.8 s).
    async def all_committed() -> bool:
        now = await committed(kafka, worker.group)
        return all(now.get(tp, -1) > last for tp, (_, last) in spans.items())

    await async_wait_until(all_committed, 30, "offsets committed")

    assert worker.running()
    worker.terminate()
    assert await worker.wait(60) == 0
    log = worker.log()
    assert "event=partitions_assigned" in log
    assert "event=worker_stopped exit_code=0" in log
    assert "HUB_DATABASE_URL=postgresql://iot:***@127.0.0.1:1/iot" in log
    assert "not-printed" not in log
    assert not [
        line
        for line in log.splitlines()
        if "level=critical" in line or ("level=error" in line and "logger=hub" in line)
    ]
    for device in devices:
        await redis.delete(latest_key(device))
        await redis.zrem("iot:last_seen", device)


async def test_db_outage_holds_offsets_and_sigterm_waits_for_the_batch(
    worker: HubWorkerProcess, kafka: str, redis: Redis
) -> None:
    devices = [f"conv-{uuid.uuid4().hex[:6]}"]
    await redis.set(f"{worker.prefix}:{DB_DOWN}", "1")
    worker.start(real=False)
    spans = await produce(kafka, readings_for(devices, 10))

    # Three attempts take 0.25..3.5 s of backoff: longer than Faust's 2.8 s commit interval.
    await asyncio.to_thread(
        wait_until, lambda: worker.count("db_write_failed") >= 3, 60, "three failed db writes"
    )
    now = await committed(kafka, worker.group)
    assert all(now[tp] <= first for tp, (first, _) in spans.items()), (now, spans)

    # SIGTERM while the batch is in flight: the worker keeps retrying instead of dropping it.
    failed_before = worker.count("db_write_failed")
    worker.terminate()
    await asyncio.to_thread(
        wait_until,
        lambda: worker.count("db_write_failed") > failed_before,
        60,
        "a retry after SIGTERM",
    )
    assert worker.running()
    now = await committed(kafka, worker.group)
    assert all(now[tp] <= first for tp, (first, _) in spans.items()), (now, spans)

    # The database comes back: the batch is written, then committed, then the worker exits.
    await redis.delete(f"{worker.prefix}:{DB_DOWN}")
    assert await worker.wait(60) == 0
    assert len(await rows_of(redis, worker.prefix, devices)) == 10
    now = await committed(kafka, worker.group)
    assert all(now[tp] > last for tp, (_, last) in spans.items()), (now, spans)
    assert worker.count("db_write_recovered") == 1
    await redis.delete(latest_key(devices[0]))
    await redis.zrem("iot:last_seen", devices[0])


async def test_unexpected_error_exits_without_committing(
    worker: HubWorkerProcess, kafka: str, redis: Redis
) -> None:
    devices = [f"conv-{uuid.uuid4().hex[:6]}"]
    await redis.set(f"{worker.prefix}:{DB_BUG}", "1")
    worker.start(real=False)
    spans = await produce(kafka, readings_for(devices, 5))
    assert await worker.wait(90) == 70
    assert worker.count("ingest_failed") == 1
    assert "RuntimeError: stand-in database bug" in worker.log()
    now = await committed(kafka, worker.group)
    assert all(now[tp] <= first for tp, (first, _) in spans.items()), (now, spans)


async def test_iot_hub_worker_into_postgres_exactly_once(
    worker: HubWorkerProcess, kafka: str, redis: Redis, postgres: str, pg: asyncpg.Connection
) -> None:
    devices = [f"conv-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    records = readings_for(devices, 20)  # 60 readings of 2 metrics: 120 rows
    port = free_port()
    worker.start(HUB_DATABASE_URL=postgres, HUB_WORKER_WEB_PORT=str(port))
    probes = f"http://127.0.0.1:{port}"
    await async_wait_until(
        lambda: _status_is(f"{probes}/readyz", 200), 60, "the worker ready on /readyz"
    )
    assert await _status_is(f"{probes}/healthz", 200)
    await produce(kafka, records)

    async def rows() -> int:
        count: int = await pg.fetchval(
            "SELECT count(*) FROM readings WHERE device_id = ANY($1)", devices
        )
        return count

    await async_wait_until(
        lambda: _equals(rows(), 120), 90, f"120 rows in readings (log {worker.log_path})"
    )
    assert (await redis.hgetall(latest_key(devices[1])))["_ts"] == str(T0 + 19_000)

    # The same records again (an edge retry, a replay): absorbed by the primary key.
    replay = await produce(kafka, records)

    async def replay_committed() -> bool:
        now = await committed(kafka, worker.group)
        return all(now.get(tp, -1) > last for tp, (_, last) in replay.items())

    await async_wait_until(replay_committed, 60, "the replay consumed and committed")
    assert await rows() == 120
    assert (
        await pg.fetchval(
            "SELECT value FROM readings WHERE device_id = $1 AND metric = 'running' LIMIT 1",
            devices[0],
        )
        == 1.0
    )

    worker.terminate()
    assert await worker.wait(60) == 0
    assert "event=worker_stopped exit_code=0" in worker.log()
    for device in devices:
        await redis.delete(latest_key(device))
        await redis.zrem("iot:last_seen", device)


async def _status_is(url: str, expected: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == expected
    except aiohttp.ClientConnectionError:
        return False


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
