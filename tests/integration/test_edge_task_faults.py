"""Faults inside the gateway process, against real Kafka and a real MQTT broker: a buffer whose acks
fail is ridden out without losing a reading; a background task that dies makes the gateway
unready. The gateway runs in-process here, so the test can hand it a faulty buffer. Its embedded
broker on a port of its own keeps other tests' messages (retained statuses) out of its buffer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.app import EdgeGateway
from edge_gateway.buffer import Buffer, SqliteBuffer, StoredRecord
from edge_gateway.settings import EdgeSettings
from iot_common.logs import LogfmtFormatter
from protocol import decode_telemetry_value, topics
from tests.support.kafka import KafkaTail, Record
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

T0 = int(time.time() * 1000)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class AckFailsBuffer(SqliteBuffer):
    """The real SQLite buffer, except that its first `failures` acks fail as a busy disk would."""

    def __init__(self, path: Path, *, max_bytes: int, failures: int) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.failures = failures
        self.acks_failed = 0

    def ack(self, ids: Iterable[int]) -> int:
        if self.acks_failed < self.failures:
            self.acks_failed += 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().ack(ids)


class CorruptibleBuffer(SqliteBuffer):
    """The real SQLite buffer; once `corrupt` is set, a lease fails as a damaged file would."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.corrupt = threading.Event()

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[StoredRecord]:
        if self.corrupt.is_set():
            raise RuntimeError("1 leased records missing from the file")
        return super().lease(max_records, max_bytes)


def settings_for(tmp_path: Path, kafka: str) -> EdgeSettings:
    return EdgeSettings(
        gateway_id=unique("gw"),
        mqtt_bind="127.0.0.1",
        mqtt_port=free_port(),
        mqtt_allow_anonymous=True,  # the test's publisher has no login
        kafka_bootstrap=kafka,
        buffer_path=tmp_path / "buffer.db",
        http_host="127.0.0.1",
        http_port=0,
        metrics_interval_s=1,
        forward_batch_max=50,
        forward_backoff_max_s=0.5,
    )


@contextlib.asynccontextmanager
async def running(
    settings: EdgeSettings, buffer_factory: Callable[[EdgeSettings], Buffer]
) -> AsyncIterator[EdgeGateway]:
    gateway = EdgeGateway(settings, buffer_factory=buffer_factory)
    try:
        await gateway.start()
        yield gateway
    finally:
        # Must settle even after a task died: the buffer still gets closed.
        await asyncio.wait_for(gateway.stop(), 60)


def publisher(settings: EdgeSettings) -> Publisher:
    endpoint = settings.mqtt_endpoint()
    return Publisher(endpoint.host, endpoint.port)


async def http_get(gateway: EdgeGateway, path: str) -> tuple[int, dict[str, Any]]:
    def get() -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{gateway.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await asyncio.to_thread(get)


async def wait_http(
    gateway: EdgeGateway,
    path: str,
    check: Callable[[int, dict[str, Any]], bool],
    what: str,
    timeout: float = 30,
) -> dict[str, Any]:
    async def matches() -> dict[str, Any] | None:
        code, body = await http_get(gateway, path)
        return body if check(code, body) else None

    return await async_wait_until(matches, timeout, what)


def message(site: str, device: str, seq: int) -> tuple[str, dict[str, object]]:
    return f"plant/{site}/{device}/telemetry", {
        "ts": T0 + seq,
        "seq": seq,
        "type": "test_rig",
        "metrics": {"value": seq * 0.5},
    }


def seen(records: list[Record], site: str) -> Counter[tuple[str, int | None]]:
    """How often each (device, seq) of `site` reached Kafka."""
    counts: Counter[tuple[str, int | None]] = Counter()
    for r in records:
        if r.topic != topics.TELEMETRY:
            continue
        for reading in decode_telemetry_value(r.value):
            if reading.site == site:
                assert reading.metrics == {"value": (reading.seq or 0) * 0.5}
                counts[(reading.device_id, reading.seq)] += 1
    return counts


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


async def test_failing_buffer_acks_lose_no_reading_and_keep_the_forwarder_running(
    kafka: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge")
    settings = settings_for(tmp_path, kafka)
    failures = 4
    buffers: list[AckFailsBuffer] = []

    def open_buffer(s: EdgeSettings) -> Buffer:
        buffer = AckFailsBuffer(s.buffer_path, max_bytes=s.buffer_max_bytes, failures=failures)
        buffers.append(buffer)
        return buffer

    site = unique("site")
    devices = ["dev-1", "dev-2", "dev-3"]
    per_device = 100
    msgs = [message(site, d, seq) for seq in range(per_device) for d in devices]
    expected = {(d, seq) for d in devices for seq in range(per_device)}
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail, running(settings, open_buffer) as gw:
        await wait_http(gw, "/readyz", lambda code, _: code == 200, "gateway ready")
        pub = publisher(settings)
        try:
            await asyncio.to_thread(pub.wait_connected)
            await asyncio.to_thread(pub.publish_all, msgs, 300)
            await asyncio.to_thread(pub.wait_acked)
        finally:
            await asyncio.to_thread(pub.close)
        records = await tail.collect_until(
            lambda r: seen(r, site).keys() >= expected, 90, "every reading despite failed acks"
        )
        # forwarded_total moves just after the buffer's ack returns: wait for both.
        status = await wait_http(
            gw,
            "/api/v1/status",
            lambda _, body: (
                body["buffer"]["depth"] == 0 and body["counters"]["forwarded_total"] >= len(msgs)
            ),
            "buffer drained",
        )
        ready_code, ready = await http_get(gw, "/readyz")
        forwarder = gw.tasks.get("forwarder")
        assert forwarder is not None
        assert not forwarder.done()

    counts = seen(records, site)
    assert counts.keys() == expected
    # The batches whose ack failed were sent again: the hub absorbs these by primary key.
    assert any(n > 1 for n in counts.values())
    assert buffers[0].acks_failed == failures
    assert status["counters"]["forward_buffer_errors_total"] == failures
    assert status["buffer"]["last_error"] == "ack: OperationalError: disk I/O error"
    # Everything appended was acked once, and counted once, despite the resends.
    assert status["buffer"]["acked_total"] == status["buffer"]["appended_total"] == len(msgs)
    assert status["counters"]["forwarded_total"] == len(msgs)
    assert status["failed_tasks"] == []
    assert (ready_code, ready["checks"]["tasks"]) == (200, True)
    (error,) = events(caplog, "buffer_error")
    assert error.__dict__["op"] == "ack"
    (recovered,) = events(caplog, "buffer_recovered")
    assert recovered.__dict__["errors"] == failures
    assert events(caplog, "task_failed") == []


async def test_a_background_task_that_dies_makes_the_gateway_unready(
    kafka: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, kafka)
    buffers: list[CorruptibleBuffer] = []

    def open_buffer(s: EdgeSettings) -> Buffer:
        buffer = CorruptibleBuffer(s.buffer_path, max_bytes=s.buffer_max_bytes)
        buffers.append(buffer)
        return buffer

    site = unique("site")
    async with running(settings, open_buffer) as gw:
        ready = await wait_http(gw, "/readyz", lambda code, _: code == 200, "gateway ready")
        assert ready["checks"]["tasks"] is True

        async def kafka_connected() -> bool:
            return gw.counters.kafka_connected

        await async_wait_until(kafka_connected, 30, "forwarder connected to Kafka")
        buffers[0].corrupt.set()
        pub = publisher(settings)
        try:
            # A new reading wakes the forwarder, whose next lease meets the damaged file.
            await asyncio.to_thread(pub.wait_connected)
            pub.publish(*message(site, "dev-1", 0))
            await asyncio.to_thread(pub.wait_acked)
        finally:
            await asyncio.to_thread(pub.close)
        unready = await wait_http(
            gw, "/readyz", lambda code, _: code == 503, "gateway unready after the task died"
        )
        _, status = await http_get(gw, "/api/v1/status")

    assert unready["checks"] == {
        "buffer": True,
        "broker": True,  # the embedded one
        "mqtt_subscribed": True,
        "tasks": False,
    }
    assert status["failed_tasks"] == ["forwarder"]
    (failed,) = events(caplog, "task_failed")
    assert failed.levelno == logging.ERROR
    assert failed.__dict__["task"] == "forwarder"
    assert failed.__dict__["error"] == "RuntimeError: 1 leased records missing from the file"
    line = LogfmtFormatter().format(failed)
    assert "\n" not in line
    assert "task=forwarder" in line
