"""The hub's delivery guarantee under faults, with `iot-hub worker` processes against real Kafka,
PostgreSQL and Redis: each reading lands in `readings` exactly once whether a Kafka range is
replayed, the worker is killed mid-batch, two workers share the partitions, or PostgreSQL goes
away for a while.

Each test has its own devices, its own consumer groups positioned where its records begin, and
its own database, so other records on `iot.telemetry` do not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.settings import HUB_DLQ_TOPIC
from protocol import NormalisedReading, encode, topics
from tests.support.hub import (
    HubWorkerProcess,
    Offsets,
    committed,
    committed_past,
    end_offsets,
    position_group,
    produce,
)
from tests.support.kafka import ensure_topics
from tests.support.readings import make_edge_metrics
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

# Recent, so that no partition maintenance at start-up finds the readings past retention.
T0 = (int(time.time()) // 3600 - 1) * 3_600_000
METRICS_PER_READING = 2


def readings(
    devices: list[str], per_device: int, gateway_id: str = "gw-faults"
) -> list[tuple[bytes | None, bytes]]:
    """Keyed like the edge keys them, each device on one partition, in order."""
    return [
        (
            device.encode(),
            encode(
                NormalisedReading(
                    site="site-faults",
                    device_id=device,
                    type="conveyor",
                    ts=T0 + i * 100,
                    seq=i,
                    metrics={"belt_speed_m_s": 1.0 + i % 100 / 100, "running": i % 2 == 0},
                    gateway_id=gateway_id,
                    received_ts=T0 + i * 100 + 3,
                )
            ),
        )
        for i in range(per_device)
        for device in devices
    ]


def new_devices(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"conv-{tag}-{n}" for n in range(count)]


class Rows:
    """Counts of the test's rows in its own database."""

    def __init__(self, conn: asyncpg.Connection, devices: list[str]) -> None:
        self.conn = conn
        self.devices = devices

    async def count(self) -> int:
        n: int = await self.conn.fetchval(
            "SELECT count(*) FROM readings WHERE device_id = ANY($1)", self.devices
        )
        return n

    async def distinct(self) -> int:
        n: int = await self.conn.fetchval(
            "SELECT count(DISTINCT (device_id, metric, ts)) FROM readings "
            "WHERE device_id = ANY($1)",
            self.devices,
        )
        return n


async def wait_rows(rows: Rows, expected: int, timeout: float, where: str) -> None:
    async def reached() -> bool:
        return await rows.count() >= expected

    await async_wait_until(reached, timeout, f"{expected} rows in readings ({where})")


async def wait_caught_up(worker: HubWorkerProcess, kafka: str, ends: Offsets) -> None:
    await async_wait_until(
        lambda: committed_past(kafka, worker.group, ends),
        90,
        f"group {worker.group} committed its range ({worker.log_path})",
    )


@pytest.fixture
async def workers(kafka: str) -> AsyncIterator[list[HubWorkerProcess]]:
    """Workers a test starts; killed, if still running, and cleaned up after it."""
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    started: list[HubWorkerProcess] = []
    yield started
    for worker in started:
        worker.cleanup()


class Group:
    """Workers of one new consumer group, starting at `start` of `iot.telemetry` (the end of
    the other topics), writing into the test's own database."""

    def __init__(
        self,
        kafka: str,
        redis_url: str,
        database_url: str,
        tmp_path: Path,
        started: list[HubWorkerProcess],
    ) -> None:
        self.kafka = kafka
        self.redis_url = redis_url
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.name = f"hub-test-{uuid.uuid4().hex[:8]}"
        self.members: list[HubWorkerProcess] = []
        self._started = started

    async def position(self, start: Offsets) -> None:
        await position_group(self.kafka, self.name, start)

    def start(self, name: str, **env: str) -> HubWorkerProcess:
        process = HubWorkerProcess(
            self.tmp_path,
            self.kafka,
            self.redis_url,
            database_url=self.database_url,
            group=self.name,
            name=name,
            env=env,
        )
        self._started.append(process)
        self.members.append(process)
        return process.start()

    def split(self, every: set[str] | None = None) -> bool:
        """The members' latest assignments are all non-empty and disjoint (and cover `every`)."""
        latest = [w.assignments()[-1] if w.assignments() else set() for w in self.members]
        union: set[str] = set().union(*latest)
        disjoint = sum(len(a) for a in latest) == len(union)
        return all(latest) and disjoint and (every is None or union == every)

    async def stop_cleanly(self) -> None:
        for process in self.members:
            assert await process.stop() == 0
            assert process.errors() == []


@pytest.fixture
def group(
    kafka: str,
    redis_url: str,
    fresh_database: str,
    workers: list[HubWorkerProcess],
    tmp_path: Path,
) -> Group:
    return Group(kafka, redis_url, fresh_database, tmp_path, workers)


# -- tests -------------------------------------------------------------------------------------


async def test_replaying_a_range_with_a_new_group_adds_no_rows(
    kafka: str,
    redis_url: str,
    fresh_database: str,
    pg_fresh: asyncpg.Connection,
    workers: list[HubWorkerProcess],
    tmp_path: Path,
) -> None:
    devices = new_devices(6)
    rows = Rows(pg_fresh, devices)
    start = await end_offsets(kafka)
    records = readings(devices, 100)
    await produce(kafka, records)
    ends = await end_offsets(kafka)
    total = len(records) * METRICS_PER_READING

    for name in ("group-a", "group-b"):
        worker = HubWorkerProcess(
            tmp_path, kafka, redis_url, database_url=fresh_database, name=name
        )
        workers.append(worker)
        await position_group(kafka, worker.group, start)
        worker.start()
        await wait_caught_up(worker, kafka, ends)
        assert await worker.stop() == 0
        assert await rows.count() == total
    assert workers[0].group != workers[1].group
    assert await rows.distinct() == total


async def test_worker_killed_mid_batch_then_restarted_writes_each_reading_once(
    kafka: str, pg_fresh: asyncpg.Connection, group: Group
) -> None:
    devices = new_devices(10)
    rows = Rows(pg_fresh, devices)
    start = await end_offsets(kafka)
    records = readings(devices, 2_000)  # 20,000 readings, 40,000 rows
    await produce(kafka, records)
    ends = await end_offsets(kafka)
    total = len(records) * METRICS_PER_READING

    await group.position(start)
    first = group.start("first")
    await wait_rows(rows, 1, 90, str(first.log_path))
    first.kill()  # SIGKILL: no shutdown, no final commit
    at_kill = await rows.count()
    assert 0 < at_kill < total, "the worker was to be killed while it still had work"

    again = group.start("again")  # the same consumer group
    await wait_rows(rows, total, 120, str(again.log_path))
    await wait_caught_up(again, kafka, ends)
    assert await again.stop() == 0
    assert await rows.count() == total
    assert await rows.distinct() == total
    assert again.errors() == []


async def test_two_workers_in_one_group_split_the_partitions(
    kafka: str, pg_fresh: asyncpg.Connection, group: Group
) -> None:
    devices = new_devices(40)  # keys spread over every partition
    rows = Rows(pg_fresh, devices)
    start = await end_offsets(kafka)
    await group.position(start)
    group.start("one")
    group.start("two")
    every = {f"{tp.topic}[{tp.partition}]" for tp in start}
    await async_wait_until(
        lambda: asyncio.sleep(0, group.split(every)), 90, "the partitions split between two workers"
    )
    records = readings(devices, 100)
    await produce(kafka, records)
    ends = await end_offsets(kafka)
    total = len(records) * METRICS_PER_READING
    await wait_rows(rows, total, 90, "two workers")
    await wait_caught_up(group.members[0], kafka, ends)
    await group.stop_cleanly()
    assert await rows.count() == total
    assert await rows.distinct() == total


class Feed:
    """The next reading of every device per round (and a gateway heartbeat, if given), each
    round waited for until its rows are in PostgreSQL."""

    def __init__(
        self, kafka: str, rows: Rows, devices: list[str], gateway: str | None = None
    ) -> None:
        self.kafka = kafka
        self.rows = rows
        self.devices = devices
        self.gateway = gateway
        self.sent = 0

    async def round(self) -> None:
        n = len(self.devices)
        # `readings` numbers them from 0: this round's are the last n.
        batch = readings(self.devices, self.sent + 1, self.gateway or "gw-faults")[self.sent * n :]
        await produce(self.kafka, batch)
        if self.gateway is not None:
            now = int(time.time() * 1000)
            beat = make_edge_metrics(self.gateway, now, site="site-faults")
            await produce(self.kafka, [(self.gateway.encode(), encode(beat))], topics.EDGE_METRICS)
        self.sent += 1
        await wait_rows(self.rows, self.sent * n * METRICS_PER_READING, 60, "feed")


async def device_offline_alerts(pg: asyncpg.Connection, devices: list[str]) -> list[Any]:
    found: list[Any] = await pg.fetch(
        "SELECT device_id, message FROM alerts WHERE rule = 'device_offline' "
        "AND device_id = ANY($1)",
        devices,
    )
    return found


async def test_a_rebalance_hands_devices_over_without_false_offline_alerts(
    kafka: str, pg_fresh: asyncpg.Connection, group: Group
) -> None:
    """Worker one learns every device, then worker two takes half the partitions. Readings
    keep coming to the new owner; the worker that gave the devices up must forget them, not
    take their silence for an outage."""
    devices = new_devices(40)
    feed = Feed(kafka, Rows(pg_fresh, devices), devices)
    await group.position(await end_offsets(kafka))
    # Longer than a rebalance's pause in consumption, which is a real silence to both.
    offline_after = {"HUB_DEVICE_OFFLINE_AFTER_S": "12"}
    one = group.start("one", **offline_after)
    for _ in range(2):  # worker one now knows every device
        await feed.round()
    group.start("two", **offline_after)

    async def split_while_feeding() -> bool:
        await feed.round()  # devices stay alive through the rebalance
        return group.split()

    await async_wait_until(split_while_feeding, 90, "the partitions split between two workers")
    # Two and a half offline periods of readings to the new owners only.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        await feed.round()
    assert one.count("alerts_handed_over") >= 1, one.log()
    assert await device_offline_alerts(pg_fresh, devices) == []
    await group.stop_cleanly()


async def test_a_silent_gateway_holds_back_its_devices_on_every_worker(
    kafka: str, pg_fresh: asyncpg.Connection, group: Group
) -> None:
    """One gateway, its 40 devices spread over two workers, its heartbeats on one worker's
    partition only. When it falls silent: one gateway_offline, and no device_offline from
    either worker (the other one learns the heartbeats from the hub's shared view)."""
    devices = new_devices(40)
    gateway = f"gw-{uuid.uuid4().hex[:6]}"
    feed = Feed(kafka, Rows(pg_fresh, devices), devices, gateway)
    await group.position(await end_offsets(kafka))
    for name in ("one", "two"):
        group.start(name, HUB_GATEWAY_OFFLINE_AFTER_S="3", HUB_DEVICE_OFFLINE_AFTER_S="6")

    async def split_while_feeding() -> bool:
        await feed.round()
        return group.split()

    await async_wait_until(split_while_feeding, 90, "the partitions split between two workers")
    for _ in range(4):  # a few more heartbeats, seen by both through Redis
        await feed.round()

    async def gateway_alerts() -> int:
        n: int = await pg_fresh.fetchval(
            "SELECT count(*) FROM alerts WHERE rule = 'gateway_offline' AND gateway_id = $1",
            gateway,
        )
        return n

    await async_wait_until(gateway_alerts, 30, "the gateway's offline alert")
    # Past the devices' own offline period, on both workers: still nothing but the gateway's.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert await device_offline_alerts(pg_fresh, devices) == []
        await asyncio.sleep(0.5)
    assert await gateway_alerts() == 1
    await group.stop_cleanly()


# -- PostgreSQL away (keep last: the slowest) --------------------------------------------------


class TcpCut:
    """A loopback TCP relay to PostgreSQL that can be cut: open connections are reset and new
    ones refused until it is restored, on the same port. For the worker, PostgreSQL is away;
    for every other client of the shared server, nothing happens."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()


async def test_postgres_away_then_back_no_crash_and_exact_rows(
    kafka: str,
    redis_url: str,
    fresh_database: str,
    pg_fresh: asyncpg.Connection,
    workers: list[HubWorkerProcess],
    tmp_path: Path,
) -> None:
    host_port, _, _database = fresh_database.rpartition("@")[2].partition("/")
    host, _, port = host_port.partition(":")
    relay = TcpCut(host, int(port))
    await relay.open()
    via_relay = fresh_database.replace(f"@{host_port}/", f"@127.0.0.1:{relay.port}/")
    devices = new_devices(6)
    rows = Rows(pg_fresh, devices)
    try:
        worker = HubWorkerProcess(tmp_path, kafka, redis_url, database_url=via_relay)
        workers.append(worker)
        await position_group(kafka, worker.group, await end_offsets(kafka))
        worker.start()
        before = readings(devices, 50)
        await produce(kafka, before)
        await wait_rows(rows, len(before) * METRICS_PER_READING, 90, str(worker.log_path))

        await relay.cut()
        during = readings(devices, 150)[len(before) :]
        spans = await produce(kafka, during)
        await async_wait_until(
            lambda: asyncio.sleep(0, worker.count("db_write_failed") >= 3),
            90,
            "three failed db writes",
        )
        assert worker.running()
        held = await committed(kafka, worker.group)
        assert all(held[tp] <= first for tp, (first, _) in spans.items()), (held, spans)

        await relay.open()
        total = (len(before) + len(during)) * METRICS_PER_READING
        await wait_rows(rows, total, 120, str(worker.log_path))
        await wait_caught_up(worker, kafka, await end_offsets(kafka))
        assert await worker.stop() == 0
    finally:
        await relay.close()
    assert await rows.count() == total
    assert await rows.distinct() == total
    assert worker.count("db_write_recovered") >= 1
    assert not [line for line in worker.log().splitlines() if "level=critical" in line]
