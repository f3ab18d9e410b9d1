"""Run the hub's worker as a real subprocess and position, feed and inspect its Kafka side.

`HubWorkerProcess` starts `iot-hub worker` exactly as an operator does (`python -m hub.cli
worker`), or, with `real=False`, the same worker over a stand-in database that records its
writes in Redis and can be made to fail (`RedisBackedDb`, for the ingest agent's own tests).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from hub.settings import HubSettings
from hub.storage.model import AlertRow, AlertTransitionLike
from protocol import NormalisedReading, topics
from tests.support.kafka import Record, partitions_of
from tests.support.process import ROOT

DB_DOWN = "db_down"  # while this key exists the stand-in database refuses connections
DB_BUG = "db_bug"  # while this key exists the stand-in database raises a non-transient error
# Where a worker without a database of its own points: nothing listens on port 1.
NO_DATABASE_URL = "postgresql://iot:not-printed@127.0.0.1:1/iot"


# What `iot-hub worker` consumes (hub/app.py). A new group reads each from the beginning (Faust
# resets to earliest), so a test positions all of them before its worker starts.
def hub_input_topics(names: topics.KafkaTopics = topics.UNPREFIXED) -> tuple[str, ...]:
    return (names.telemetry, names.device_status, names.edge_metrics)


HUB_INPUT_TOPICS = hub_input_topics()

_ASSIGNED = re.compile(r"event=partitions_assigned .*?partitions=(\S+)")


# -- the stand-in database ---------------------------------------------------------------------


class RedisBackedDb:
    """Stand-in for the PostgreSQL adapter: appends `device_id:ts` per reading to a Redis list."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object:
        if await self.redis.exists(f"{self.prefix}:{DB_DOWN}"):
            raise ConnectionRefusedError(111, "stand-in database refuses connections")
        if await self.redis.exists(f"{self.prefix}:{DB_BUG}"):
            raise RuntimeError("stand-in database bug")
        await self.redis.rpush(f"{self.prefix}:rows", *(f"{r.device_id}:{r.ts}" for r in readings))
        return len(readings)

    # The rest of `hub.worker.runtime.HubDatabase`: nothing to maintain, no alert or state
    # kept. Alerts applied here return None, so the worker publishes no alert event.

    async def migrate(self) -> list[str]:
        return []

    async def ensure_partitions(
        self, now_ms: int, ahead_days: int, behind_days: int = 1
    ) -> list[str]:
        return []

    async def drop_expired_partitions(self, now_ms: int, retention_days: int) -> list[str]:
        return []

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        return False

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        return None

    async def list_alerts(self, state: str | None = None, limit: int = 100) -> list[AlertRow]:
        return []

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        return False

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int:
        return 0

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        return 0

    async def recompute_tier(self, name: str, buckets: Iterable[tuple[str, str, int]]) -> int:
        return 0

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        return 0

    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]:
        return {}

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[tuple[str, str, int]]:
        return []


def stand_in_worker_main() -> int:
    """Entry point of a worker subprocess over `RedisBackedDb` (`HubWorkerProcess(real=False)`)."""
    from hub.cli import run_worker, start_command

    settings = HubSettings()
    start_command(settings)
    prefix = os.environ["TEST_HUB_DB_PREFIX"]

    @asynccontextmanager
    async def open_database(settings: HubSettings) -> AsyncIterator[RedisBackedDb]:
        redis = Redis.from_url(settings.redis_url)
        try:
            yield RedisBackedDb(redis, prefix)
        finally:
            await redis.aclose()

    return run_worker(
        settings, open_database=open_database, datadir=Path(os.environ["TEST_HUB_DATADIR"])
    )


# -- the worker process ------------------------------------------------------------------------


class HubWorkerProcess:
    """One worker subprocess with its own log file. Several may share a consumer group (pass
    `group`); each gets a fresh one otherwise. Small batches by default, so a test sees many."""

    def __init__(
        self,
        workdir: Path,
        kafka: str,
        redis_url: str,
        *,
        database_url: str = NO_DATABASE_URL,
        group: str | None = None,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.group = group or f"hub-test-{uuid.uuid4().hex[:8]}"
        self.prefix = f"test:{self.group}"
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "HUB_KAFKA_BOOTSTRAP": kafka,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATABASE_URL": database_url,
            "HUB_CONSUMER_GROUP": self.group,
            "HUB_WORKER_WEB_PORT": "0",
            "HUB_INGEST_BATCH_MAX": "50",
            "HUB_INGEST_BATCH_WAIT_S": "0.2",
            "TEST_HUB_DB_PREFIX": self.prefix,
            "TEST_HUB_DATADIR": str(workdir / f"{name}-faust"),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, real: bool = True, **env: str) -> HubWorkerProcess:
        """`real=True`: `python -m hub.cli worker`; `real=False`: over `RedisBackedDb`."""
        command = (
            ["-m", "hub.cli", "worker"]
            if real
            else [
                "-c",
                "from tests.support.hub import stand_in_worker_main; "
                "raise SystemExit(stand_in_worker_main())",
            ]
        )
        self.env.update(env)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count(self, event: str) -> int:
        return sum(1 for line in self.log().splitlines() if f"event={event} " in line)

    def assignments(self) -> list[set[str]]:
        """Every `partitions_assigned` of this process so far, oldest first (`iot.telemetry[3]`)."""
        found = []
        for line in self.log().splitlines():
            match = _ASSIGNED.search(line)
            if match:
                found.append(set() if match[1] == "-" else set(match[1].strip('"').split(",")))
        return found

    def errors(self) -> list[str]:
        """Critical lines, and error lines of the hub's own loggers."""
        return [
            line
            for line in self.log().splitlines()
            if "level=critical" in line or ("level=error" in line and "logger=hub" in line)
        ]

    def running(self) -> bool:
        assert self.proc is not None
        return self.proc.poll() is None

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, timeout)

    async def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (the batch in flight is finished and committed first)."""
        self.terminate()
        return await self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, if it still runs: no shutdown, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        self.kill()
        # `iot-hub worker` keeps Faust's (empty) data directory in the temp dir.
        shutil.rmtree(Path(tempfile.gettempdir()) / f"{self.group}-faust", ignore_errors=True)


# -- Kafka: offsets and records ----------------------------------------------------------------

Offsets = dict[TopicPartition, int]


async def end_offsets(bootstrap: str, topic: str = topics.TELEMETRY) -> Offsets:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await partitions_of(bootstrap, topic)))
    finally:
        await consumer.stop()


async def position_group(
    bootstrap: str,
    group: str,
    telemetry: Offsets,
    names: topics.KafkaTopics = topics.UNPREFIXED,
) -> None:
    """Commit offsets for a consumer group that has not started yet: `telemetry` for
    `iot.telemetry`, the end for the worker's other input topics (all under `names`' prefix).
    Its worker starts there."""
    offsets = dict(telemetry)
    for topic in hub_input_topics(names):
        if topic != names.telemetry:
            offsets.update(await end_offsets(bootstrap, topic))
    await _commit(bootstrap, group, offsets)


async def _commit(bootstrap: str, group: str, offsets: Offsets) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def position_group_at_end(
    bootstrap: str,
    group: str,
    topic: str | None = None,
    *,
    names: topics.KafkaTopics = topics.UNPREFIXED,
) -> None:
    """Commit the end offsets for a new group, so its worker skips everything older: of every
    input topic (under `names`' prefix), or of `topic` only."""
    if topic is None:
        telemetry = await end_offsets(bootstrap, names.telemetry)
        await position_group(bootstrap, group, telemetry, names)
        return
    await _commit(bootstrap, group, await end_offsets(bootstrap, topic))


async def committed(bootstrap: str, group: str) -> Offsets:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if tp.topic == topics.TELEMETRY}


async def committed_past(bootstrap: str, group: str, ends: Offsets) -> bool:
    """The group has committed at least `ends` on every partition (empty ones included)."""
    now = await committed(bootstrap, group)
    return all(now.get(tp, -1) >= end for tp, end in ends.items() if end > 0)


async def produce(
    bootstrap: str, records: Sequence[tuple[bytes | None, bytes]], topic: str = topics.TELEMETRY
) -> dict[TopicPartition, tuple[int, int]]:
    """Send with acks=all and wait for every ack; returns (first, last) offset per partition
    written. Pipelined: the producer batches, so 100,000 records take seconds, not minutes."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    spans: dict[TopicPartition, tuple[int, int]] = {}
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in records]
        for future in pending:
            meta = await future
            tp = TopicPartition(meta.topic, meta.partition)
            first, last = spans.get(tp, (meta.offset, meta.offset))
            spans[tp] = (min(first, meta.offset), max(last, meta.offset))
    finally:
        await producer.stop()
    return spans


async def read_range(bootstrap: str, start: Offsets, end: Offsets) -> list[Record]:
    """Every record from `start` (inclusive) to `end` (exclusive), per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[Record] = []
    try:
        wanted = {tp: (start.get(tp, 0), end) for tp, end in end.items() if end > start.get(tp, 0)}
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        while wanted:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, batch in batches.items():
                if tp not in wanted:
                    continue
                _, stop = wanted[tp]
                records += [r for r in batch if r.offset < stop]
                if await consumer.position(tp) >= stop:
                    del wanted[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return records
