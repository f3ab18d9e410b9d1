"""The worker's agents beyond ingest, as `iot-hub worker` runs them against real Kafka 4,
PostgreSQL 15 and Redis 7: start-up maintenance, alerts, device status and gateway health,
1-minute rollups.

Each test gets an empty database of its own (the worker migrates it), a consumer group
positioned at the end of every topic the worker reads, and device ids of its own.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hub.settings import HUB_DLQ_TOPIC
from hub.storage.partitions import DAY_MS, DayPartition
from hub.storage.redis_keys import ALERTS_CHANNEL, DEVICE_STATE_KEY, GATEWAYS_KEY
from protocol import DeviceStatus, EdgeMetrics, NormalisedReading, encode, topics
from tests.support.hub import HubWorkerProcess
from tests.support.kafka import KafkaTail, Record
from tests.support.readings import make_edge_metrics
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

SPINDLE_TEMP_RULE = "cnc_spindle.spindle_temp_c.threshold"  # crit_high 85, hysteresis 2, 30 s


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
async def db(blank_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(blank_database)
    yield conn
    await conn.close()


@pytest.fixture
async def alert_messages(redis: Redis) -> AsyncIterator[PubSub]:
    pubsub = redis.pubsub()
    await pubsub.subscribe(ALERTS_CHANNEL)
    yield pubsub
    await pubsub.aclose()


def now_ms() -> int:
    return int(time.time() * 1000)


def reading(
    device_id: str, ts: int, device_type: str, gateway_id: str = "gw-agents", **metrics: float
) -> NormalisedReading:
    return NormalisedReading(
        site="site-1",
        device_id=device_id,
        type=device_type,
        ts=ts,
        seq=None,
        metrics=metrics,
        gateway_id=gateway_id,
        received_ts=now_ms(),
    )


async def send(kafka: str, topic: str, records: Sequence[tuple[str | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=None if key is None else key.encode())
    finally:
        await producer.stop()


async def send_readings(kafka: str, readings: Sequence[NormalisedReading]) -> None:
    await send(kafka, topics.TELEMETRY, [(r.device_id, encode(r)) for r in readings])


async def worker_ready(worker: HubWorkerProcess) -> None:
    async def ready() -> bool:
        assert worker.running(), worker.log()
        return worker.count("partitions_assigned") > 0 and worker.count("worker_ready") > 0

    await async_wait_until(ready, 60, f"worker ready (log {worker.log_path})")


async def alert_rows(db: asyncpg.Connection, device_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM alerts WHERE device_id = $1 ORDER BY id", device_id
    )
    return rows


def events_of(records: Sequence[Record], device_id: str) -> list[dict[str, Any]]:
    out = []
    for record in records:
        event = json.loads(record.value)
        if event["device_id"] == device_id:
            assert record.key == device_id.encode()
            out.append(event)
    return out


async def pubsub_events(pubsub: PubSub, device_id: str, count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def enough() -> bool:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            event = json.loads(message["data"])
            if event["device_id"] == device_id:
                seen.append(event)
        return len(seen) >= count

    await async_wait_until(enough, 30, f"{count} alert message(s) on {ALERTS_CHANNEL}")
    return seen


# -- tests -------------------------------------------------------------------------------------


async def test_startup_migrates_and_creates_partitions(
    worker: HubWorkerProcess, db: asyncpg.Connection
) -> None:
    worker.start(HUB_PARTITIONS_AHEAD_DAYS="2")
    await worker_ready(worker)
    assert await db.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    names = {
        row["relname"]
        for row in await db.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass"
        )
    }
    today = now_ms()
    wanted = {DayPartition.of(today + n * DAY_MS).name for n in range(-1, 3)}
    assert wanted <= names, (wanted, names)
    assert await worker.stop() == 0
    assert not worker.errors()


async def test_threshold_alert_raised_once_then_cleared(
    worker: HubWorkerProcess,
    kafka: str,
    db: asyncpg.Connection,
    alert_messages: PubSub,
) -> None:
    device = f"cnc-{uuid.uuid4().hex[:8]}"
    # In the past, 30 s apart: below the rate rule's 2 °C/s, and the clearing streak below
    # (85 - hysteresis 2 = 83) lasts the rule's clear_after_s of 30 s on reading timestamps.
    t0 = now_ms() - 600_000
    hot = [50.0, 95.0, 96.0, 95.5]
    worker.start(HUB_DEVICE_OFFLINE_AFTER_S="600")
    await worker_ready(worker)
    async with KafkaTail(kafka, [topics.ALERTS]) as tail:
        await send_readings(
            kafka,
            [
                reading(device, t0 + i * 30_000, "cnc_spindle", spindle_temp_c=v)
                for i, v in enumerate(hot)
            ],
        )
        raised = await tail.collect_until(
            lambda recs: len(events_of(recs, device)) >= 1, 60, f"a raised event for {device}"
        )
        (event,) = events_of(raised, device)
        assert event["v"] == 1
        assert event["event"] == "raised"
        assert event["rule"] == SPINDLE_TEMP_RULE
        assert event["severity"] == "critical"
        assert event["state"] == "active"
        assert event["value"] == 95.0
        (live,) = await pubsub_events(alert_messages, device, 1)
        assert live == event

        rows = await alert_rows(db, device)
        assert [(r["rule"], r["state"], r["occurrences"]) for r in rows] == [
            (SPINDLE_TEMP_RULE, "active", 1)
        ]

        calm = [
            reading(device, t0 + (len(hot) + i) * 30_000, "cnc_spindle", spindle_temp_c=50.0)
            for i in range(3)
        ]
        await send_readings(kafka, calm)
        records = await tail.collect_until(
            lambda recs: len(events_of(recs, device)) >= 2, 60, f"a cleared event for {device}"
        )
    events = events_of(records, device)
    assert [e["event"] for e in events] == ["raised", "cleared"]
    assert events[1]["id"] == events[0]["id"]
    assert events[1]["state"] == "cleared"
    rows = await alert_rows(db, device)
    assert [(r["rule"], r["state"]) for r in rows] == [(SPINDLE_TEMP_RULE, "cleared")]
    assert [e["event"] for e in await pubsub_events(alert_messages, device, 1)] == ["cleared"]
    assert await worker.stop() == 0
    assert not worker.errors()


async def test_silence_and_offline_status_and_gateway_health(
    worker: HubWorkerProcess, kafka: str, db: asyncpg.Connection, redis: Redis
) -> None:
    silent = f"conv-{uuid.uuid4().hex[:8]}"
    reported = f"conv-{uuid.uuid4().hex[:8]}"
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    worker.start(HUB_DEVICE_OFFLINE_AFTER_S="3")
    await worker_ready(worker)
    async with KafkaTail(kafka, [topics.ALERTS, HUB_DLQ_TOPIC]) as tail:
        await send_readings(kafka, [reading(silent, now_ms(), "conveyor", belt_speed_m_s=1.2)])
        status = DeviceStatus(
            site="site-1", device_id=reported, state="offline", ts=now_ms(), gateway_id=gateway
        )
        bad_status = f"not a status {uuid.uuid4().hex}".encode()
        await send(kafka, topics.DEVICE_STATUS, [(reported, encode(status)), (None, bad_status)])
        metrics = EdgeMetrics(
            gateway_id=gateway,
            site="site-1",
            ts=now_ms(),
            uptime_s=12.5,
            buffer_depth=3,
            buffer_bytes=900,
            buffer_max_bytes=1 << 20,
            buffer_oldest_age_s=0.4,
            received_total=10,
            forwarded_total=7,
            dropped_total=0,
            dead_lettered_total=0,
            received_rate=1.0,
            forwarded_rate=1.0,
            kafka_connected=True,
        )
        await send(kafka, topics.EDGE_METRICS, [(gateway, encode(metrics))])

        def offline_events(recs: list[Record]) -> list[dict[str, Any]]:
            alerts = [r for r in recs if r.topic == topics.ALERTS]
            return [
                e
                for d in (silent, reported)
                for e in events_of(alerts, d)
                if e["rule"] == "device_offline"
            ]

        records = await tail.collect_until(
            lambda recs: (
                {e["device_id"] for e in offline_events(recs)} == {silent, reported}
                and any(r.topic == HUB_DLQ_TOPIC and r.value == bad_status for r in recs)
            ),
            60,
            "device_offline for both devices and the bad status dead-lettered",
        )
    by_device = {e["device_id"]: e for e in offline_events(records)}
    assert by_device[silent]["event"] == "raised"
    assert by_device[silent]["message"].startswith(f"no data from {silent}")
    assert by_device[reported]["message"] == f"{reported} reported offline"
    (dead,) = [r for r in records if r.topic == HUB_DLQ_TOPIC and r.value == bad_status]
    assert dict(dead.headers)["error"].startswith(b"invalid_json: ")

    assert await db.fetchval("SELECT state FROM devices WHERE device_id = $1", reported) == (
        "offline"
    )
    # Silence is presence too: written before the alert event was published.
    assert await db.fetchval("SELECT state FROM devices WHERE device_id = $1", silent) == "offline"
    state = json.loads(await redis.hget(DEVICE_STATE_KEY, reported) or "{}")
    assert state == {"state": "offline", "ts": status.ts, "site": "site-1", "gateway_id": gateway}

    health = json.loads(await redis.hget(GATEWAYS_KEY, gateway) or "{}")
    assert health["buffer_depth"] == 3
    assert health["kafka_connected"] is True
    assert health["received_ts"] >= metrics.ts

    assert await worker.stop() == 0
    assert not worker.errors()
    await redis.hdel(DEVICE_STATE_KEY, reported)
    await redis.hdel(GATEWAYS_KEY, gateway)


async def test_a_low_buffer_runway_raises_a_gateway_warning_and_recovery_clears_it(
    worker: HubWorkerProcess, kafka: str, db: asyncpg.Connection, redis: Redis
) -> None:
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    worker.start(HUB_BUFFER_RUNWAY_WARN_S="600")
    await worker_ready(worker)

    async def report(runway_s: float | None) -> None:
        metrics = make_edge_metrics(gateway, now_ms()).model_copy(
            update={"buffer_runway_s": runway_s, "kafka_connected": runway_s is None}
        )
        await send(kafka, topics.EDGE_METRICS, [(gateway, encode(metrics))])

    async def runway_alert() -> asyncpg.Record | None:
        row: asyncpg.Record | None = await db.fetchrow(
            "SELECT * FROM alerts WHERE gateway_id = $1 AND rule = 'gateway_buffer_runway'",
            gateway,
        )
        return row

    await report(None)
    await report(900.0)  # above the threshold: nothing
    await report(240.0)
    raised = await async_wait_until(runway_alert, 60, "the runway warning in PostgreSQL")
    assert raised["device_id"] is None  # a gateway's alert: keyed on no device
    assert (raised["state"], raised["severity"], raised["value"]) == ("active", "warning", 240.0)
    health = json.loads(await redis.hget(GATEWAYS_KEY, gateway) or "{}")
    assert health["buffer_runway_s"] == 240.0

    await report(None)  # Kafka back: the buffer drains

    async def cleared() -> asyncpg.Record | None:
        row = await runway_alert()
        return row if row is not None and row["state"] == "cleared" else None

    row = await async_wait_until(cleared, 60, "the runway warning cleared")
    assert row["id"] == raised["id"]
    assert row["cleared_by"] is None
    assert await db.fetchval("SELECT count(*) FROM alerts WHERE gateway_id = $1", gateway) == 1
    assert await worker.stop() == 0
    assert not worker.errors()
    await redis.hdel(GATEWAYS_KEY, gateway)


async def test_rollups_equal_sql_aggregates_of_the_readings(
    worker: HubWorkerProcess, kafka: str, db: asyncpg.Connection
) -> None:
    devices = [f"press-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]
    # Four and a half minutes of readings every 7 s, an hour ago: every bucket is past its
    # (1 s) grace when it arrives, so the first timer pass computes it.
    t0 = now_ms() - 3_600_000
    batch = [
        reading(
            device,
            t0 + i * 7_000,
            "hydraulic_press",
            ram_pressure_bar=100 + (i * 37 % 50) + n,
            cycle_count=float(i),
        )
        for i in range(40)
        for n, device in enumerate(devices)
    ]
    worker.start(HUB_ROLLUP_GRACE_S="1")
    await worker_ready(worker)
    await send_readings(kafka, batch)

    expected_sql = """
        SELECT device_id, metric, date_bin('1 minute', ts, TIMESTAMPTZ '1970-01-01') AS bucket,
               count(*)::integer AS count, min(value) AS min, max(value) AS max,
               avg(value) AS avg, (array_agg(value ORDER BY ts DESC))[1] AS last
        FROM readings WHERE device_id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    rollup_sql = """
        SELECT device_id, metric, bucket, count, min, max, avg, last
        FROM readings_1m WHERE device_id = ANY($1) ORDER BY 1, 2, 3"""

    async def rollups_match() -> bool:
        if await db.fetchval("SELECT count(*) FROM readings WHERE device_id = ANY($1)", devices) < (
            len(batch) * 2
        ):
            return False
        expected = [tuple(r) for r in await db.fetch(expected_sql, devices)]
        return expected == [tuple(r) for r in await db.fetch(rollup_sql, devices)]

    await async_wait_until(rollups_match, 60, f"readings_1m matching readings ({worker.log_path})")
    buckets = await db.fetchval(
        "SELECT count(DISTINCT bucket) FROM readings_1m WHERE device_id = $1", devices[0]
    )
    assert buckets >= 5

    # The hours and days, recomputed from the minutes, hold the same aggregates of the readings
    # (avg to rounding: there it is a weighted mean of means).
    expected_tier_sql = """
        SELECT device_id, metric, date_bin($2::interval, ts, TIMESTAMPTZ '1970-01-01') AS b,
               count(*)::integer, min(value), max(value), round(avg(value)::numeric, 9),
               (array_agg(value ORDER BY ts DESC))[1]
        FROM readings WHERE device_id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
    tier_sql = """
        SELECT device_id, metric, bucket, count, min, max, round(avg::numeric, 9), last
        FROM {table} WHERE device_id = ANY($1) ORDER BY 1, 2, 3"""

    async def tier_matches(table: str, width: timedelta) -> bool:
        expected = await db.fetch(expected_tier_sql, devices, width)
        got = await db.fetch(tier_sql.format(table=table), devices)
        return [tuple(r) for r in expected] == [tuple(r) for r in got]

    for table, width in (("readings_1h", timedelta(hours=1)), ("readings_1d", timedelta(days=1))):
        await async_wait_until(
            functools.partial(tier_matches, table, width),
            60,
            f"{table} matching readings ({worker.log_path})",
        )
    assert await worker.stop() == 0
    assert not worker.errors()
