"""Notification delivery under faults, with `iot-hub worker` processes against real Kafka,
PostgreSQL, Redis and an HTTP receiver: a receiver down for a while then back, a worker killed
between the alert's commit and the send, and two workers sharing the work. In each, every
notification arrives exactly once (by its idempotency key).

A conveyor reporting `jammed: true` raises a critical alert at once (hub/rules/defaults.yaml).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from hub.settings import HUB_DLQ_TOPIC
from protocol import NormalisedReading, encode, topics
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.kafka import ensure_topics
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """A webhook receiver that can go away (connection refused) and come back on its port."""

    runner: aiohttp.web.AppRunner
    port: int = 0
    keys: list[str] = field(default_factory=list)
    site: aiohttp.web.TCPSite | None = None

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        body: dict[str, Any] = await request.json()
        self.keys.extend(n["idempotency_key"] for n in body["notifications"])
        return aiohttp.web.Response(text="ok")

    async def up(self) -> None:
        self.site = aiohttp.web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()
        self.port = self.site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def down(self) -> None:
        assert self.site is not None
        await self.site.stop()
        self.site = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = aiohttp.web.Application()
    runner = aiohttp.web.AppRunner(app)
    rec = Receiver(runner)
    app.router.add_post("/hook", rec.handle)
    await runner.setup()
    await rec.up()
    yield rec
    await runner.cleanup()


@pytest.fixture
async def db(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_database)
    yield conn
    await conn.close()


# Kafka's topics are shared with other tests (and other engineers' runs): a route for this
# module's site and rule only, so foreign readings that reach the worker notify nobody here.
SITE = f"site-notify-{uuid.uuid4().hex[:6]}"
MATCH = f"{{site: [{SITE}], rule: [conveyor.jammed.threshold]}}"


def _notifications_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "notifications.yaml"
    path.write_text(
        "channels:\n"
        f'  - {{name: ops-webhook, type: webhook, url: "http://127.0.0.1:{receiver.port}/hook",'
        " timeout_s: 2}\n"
        "routes:\n"
        f"  - {{match: {MATCH}, channels: [ops-webhook], group_window_s: 0}}\n"
    )
    return path


async def _worker(
    tmp_path: Path,
    kafka: str,
    redis_url: str,
    database: str,
    notifications: Path,
    *,
    group: str | None = None,
    name: str = "worker",
) -> HubWorkerProcess:
    process = HubWorkerProcess(
        tmp_path,
        kafka,
        redis_url,
        database_url=database,
        group=group,
        name=name,
        env={
            "HUB_NOTIFICATIONS_FILE": str(notifications),
            "HUB_NOTIFICATIONS_RETRY_MAX_S": "1",
            "HUB_PUBLIC_URL": "https://hub.example",
        },
    )
    if group is None:
        await ensure_topics(kafka, [*topics.KAFKA_TOPICS, HUB_DLQ_TOPIC])
        await position_group_at_end(kafka, process.group)
    return process


async def _ready(worker: HubWorkerProcess) -> None:
    async def ready() -> bool:
        assert worker.running(), worker.log()[-3000:]
        return worker.count("partitions_assigned") > 0 and worker.count("worker_ready") > 0

    await async_wait_until(ready, 90, f"worker ready (log {worker.log_path})")


async def _jam(kafka: str, devices: list[str]) -> None:
    now = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        for device in devices:
            reading = NormalisedReading(
                site=SITE,
                device_id=device,
                type="conveyor",
                ts=now,
                seq=None,
                metrics={"jammed": True},
                gateway_id="gw-notify",
                received_ts=now,
            )
            await producer.send_and_wait(topics.TELEMETRY, encode(reading), key=device.encode())
    finally:
        await producer.stop()


def _devices(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"belt-{tag}-{n}" for n in range(count)]


async def _delivered(db: asyncpg.Connection, expected: int) -> bool:
    done: int = await db.fetchval(
        "SELECT count(*) FROM notification_deliveries WHERE state = 'delivered'"
    )
    return done >= expected


async def _expected_keys(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch("SELECT idempotency_key FROM notification_deliveries ORDER BY id")
    return sorted(r["idempotency_key"] for r in rows)


async def test_a_receiver_down_for_a_while_gets_each_notification_once(
    tmp_path: Path,
    kafka: str,
    redis_url: str,
    fresh_database: str,
    db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    devices = _devices(4)
    worker = await _worker(
        tmp_path, kafka, redis_url, fresh_database, _notifications_file(tmp_path, receiver)
    )
    try:
        worker.start()
        await _ready(worker)
        await receiver.down()
        await _jam(kafka, devices)

        async def failing() -> bool:
            failed: int = await db.fetchval(
                "SELECT count(DISTINCT delivery_id) FROM notification_attempts "
                "WHERE outcome = 'failed'"
            )
            return failed >= len(devices)

        await async_wait_until(failing, 60, "every delivery failed at least once")
        assert receiver.keys == []
        await receiver.up()
        await async_wait_until(lambda: _delivered(db, len(devices)), 60, "all delivered")
        assert sorted(receiver.keys) == await _expected_keys(db)
        assert len(receiver.keys) == len(devices)
        assert worker.count("notification_attempt") >= 2 * len(devices)
    finally:
        worker.cleanup()


async def test_a_worker_killed_between_the_alert_commit_and_the_send(
    tmp_path: Path,
    kafka: str,
    redis_url: str,
    fresh_database: str,
    db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    notifications = _notifications_file(tmp_path, receiver)
    first = await _worker(tmp_path, kafka, redis_url, fresh_database, notifications)
    second = await _worker(
        tmp_path, kafka, redis_url, fresh_database, notifications, group=first.group, name="second"
    )
    (device,) = _devices(1)
    blocker = await asyncpg.connect(fresh_database)
    try:
        first.start()
        await _ready(first)
        # The dispatcher cannot make deliveries while the test holds this lock; the alert
        # pipeline never touches the table, so the alert and its outbox row commit meanwhile.
        block = blocker.transaction()
        await block.start()
        await blocker.execute("LOCK TABLE notification_deliveries IN EXCLUSIVE MODE")
        await _jam(kafka, [device])

        async def committed() -> bool:
            n: int = await db.fetchval(
                "SELECT count(*) FROM notification_outbox o JOIN alerts a ON a.id = o.alert_id "
                "WHERE a.device_id = $1",
                device,
            )
            return n == 1

        await async_wait_until(committed, 60, "the alert and its outbox row committed")
        first.kill()
        await block.rollback()
        assert receiver.keys == []
        second.start()
        await async_wait_until(lambda: _delivered(db, 1), 90, "the notification delivered")
        assert receiver.keys == await _expected_keys(db)
        assert len(receiver.keys) == 1
        attempts = await db.fetch("SELECT outcome FROM notification_attempts")
        assert [a["outcome"] for a in attempts] == ["delivered"]
    finally:
        await blocker.close()
        first.cleanup()
        second.cleanup()


async def test_two_workers_send_each_notification_once(
    tmp_path: Path,
    kafka: str,
    redis_url: str,
    fresh_database: str,
    db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    notifications = _notifications_file(tmp_path, receiver)
    one = await _worker(tmp_path, kafka, redis_url, fresh_database, notifications, name="one")
    two = await _worker(
        tmp_path, kafka, redis_url, fresh_database, notifications, group=one.group, name="two"
    )
    devices = _devices(12)
    try:
        one.start()
        two.start()
        await _ready(one)
        await _ready(two)

        async def both_assigned() -> bool:
            return all(w.assignments() and w.assignments()[-1] for w in (one, two))

        await async_wait_until(both_assigned, 90, "both workers assigned partitions")
        await _jam(kafka, devices)
        await async_wait_until(lambda: _delivered(db, len(devices)), 90, "all delivered")
        assert sorted(receiver.keys) == await _expected_keys(db)
        assert len(receiver.keys) == len(devices)
        delivered: int = await db.fetchval(
            "SELECT count(*) FROM notification_attempts WHERE outcome = 'delivered'"
        )
        assert delivered == len(devices)
    finally:
        one.cleanup()
        two.cleanup()


async def test_a_receiver_that_hangs_does_not_hold_ingest_up(
    tmp_path: Path, kafka: str, redis_url: str, fresh_database: str, db: asyncpg.Connection
) -> None:
    answer = asyncio.Event()
    asked = asyncio.Event()

    async def hang(request: aiohttp.web.Request) -> aiohttp.web.Response:
        asked.set()
        await answer.wait()
        return aiohttp.web.Response(text="ok")

    app = aiohttp.web.Application()
    app.router.add_post("/hook", hang)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    path = tmp_path / "notifications.yaml"
    path.write_text(
        "channels:\n"
        f'  - {{name: slow, type: webhook, url: "http://127.0.0.1:{port}/hook", timeout_s: 120}}\n'
        "routes:\n"
        f"  - {{match: {MATCH}, channels: [slow], group_window_s: 0}}\n"
    )
    worker = await _worker(tmp_path, kafka, redis_url, fresh_database, path)
    jammed, later = _devices(2)
    try:
        worker.start()
        await _ready(worker)
        await _jam(kafka, [jammed])

        async def was_asked() -> bool:
            return asked.is_set()

        await async_wait_until(was_asked, 60, "the receiver asked (and left hanging)")
        await _jam(kafka, [later])  # ingested and alerted while the send still hangs

        async def ingested() -> bool:
            n: int = await db.fetchval("SELECT count(*) FROM alerts WHERE device_id = $1", later)
            return n == 1

        await async_wait_until(ingested, 60, "the later reading's alert committed")
        assert not answer.is_set()
        answer.set()
        await async_wait_until(lambda: _delivered(db, 2), 60, "both delivered")
    finally:
        answer.set()
        worker.cleanup()
        await runner.cleanup()
