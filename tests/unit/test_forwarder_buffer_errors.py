"""The forwarder rides out a failing buffer: no record is lost, errors are counted and logged once
per episode. Kafka is a tiny in-memory fake here; tests/integration/test_edge_task_faults.py
runs the same fault against a real Kafka."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from edge_gateway.buffer import BufferRecord, MemoryBuffer, StoredRecord
from edge_gateway.forwarder import ErrorEpisode, Forwarder
from edge_gateway.settings import EdgeSettings
from edge_gateway.stats import GatewayCounters
from tests.support.waiting import async_wait_until


class FlakyBuffer(MemoryBuffer):
    """A MemoryBuffer whose lease/ack/release raise `error` the next `failures[op]` times."""

    def __init__(self, failures: dict[str, int], error: Exception | None = None) -> None:
        super().__init__(max_bytes=10_000_000)
        self.failures = failures
        self.error = error or sqlite3.OperationalError("database is locked")

    def _maybe_fail(self, op: str) -> None:
        if self.failures.get(op, 0) > 0:
            self.failures[op] -= 1
            raise self.error

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[StoredRecord]:
        self._maybe_fail("lease")
        return super().lease(max_records, max_bytes)

    def ack(self, ids: Iterable[int]) -> int:
        self._maybe_fail("ack")
        return super().ack(ids)

    def release(self, ids: Iterable[int]) -> None:
        self._maybe_fail("release")
        super().release(ids)


class FakeClient:
    async def fetch_all_metadata(self) -> None:
        return None


class FakeProducer:
    """Takes every record, except that the next `timeouts` sends fail as a lost Kafka would."""

    def __init__(self, sent: list[bytes], timeouts: int = 0) -> None:
        self.sent = sent
        self.timeouts = timeouts
        self.client = FakeClient()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.timeouts > 0:
            self.timeouts -= 1
            fut.set_exception(KafkaTimeoutError())
        else:
            self.sent.append(value)
            fut.set_result(None)
        return fut


def records(n: int) -> list[BufferRecord]:
    return [BufferRecord("iot.telemetry", b"dev", f"r{i}".encode(), 1_000 + i) for i in range(n)]


async def forward_all(
    buffer: FlakyBuffer, n: int, *, kafka_timeouts: int = 0, batch_max: int = 4
) -> tuple[list[bytes], GatewayCounters]:
    """Append n records, run the forwarder until the buffer is empty, return what Kafka got."""
    # Version 1: the values here are opaque bytes, one Kafka record each (packing:
    # test_forwarder_packing.py).
    settings = EdgeSettings(
        forward_backoff_max_s=0.02, forward_batch_max=batch_max, kafka_value_version=1
    )
    counters = GatewayCounters()
    sent: list[bytes] = []
    producer = FakeProducer(sent, kafka_timeouts)
    forwarder = Forwarder(
        settings, buffer, counters, producer_factory=lambda _: cast(AIOKafkaProducer, producer)
    )
    buffer.append(records(n))
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))

    async def drained() -> bool:
        if task.done():
            task.result()  # a forwarder that died fails the test with its own error
        return buffer.stats().depth == 0 and buffer.stats().in_flight == 0

    try:
        await async_wait_until(drained, 10, "buffer drained")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return sent, counters


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


async def test_failed_acks_resend_the_records_and_lose_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.forwarder")
    buffer = FlakyBuffer({"ack": 3})
    sent, counters = await forward_all(buffer, 10)
    expected = {f"r{i}".encode() for i in range(10)}
    assert set(sent) == expected
    assert len(sent) > 10  # the batches whose ack failed went out again
    assert buffer.stats().acked_total == 10
    assert counters.forwarded_total == 10  # a resent record is counted once
    assert counters.forward_buffer_errors_total == 3
    assert counters.buffer_last_error == "ack: OperationalError: database is locked"
    # One line for the episode, not one per failed ack, and one when it is over.
    (error,) = events(caplog, "buffer_error")
    assert (error.levelno, error.__dict__["op"]) == (logging.WARNING, "ack")
    assert "database is locked" in error.__dict__["error"]
    (recovered,) = events(caplog, "buffer_recovered")
    assert recovered.__dict__["errors"] == 3


async def test_failed_leases_are_retried() -> None:
    buffer = FlakyBuffer({"lease": 2}, OSError(28, "No space left on device"))
    sent, counters = await forward_all(buffer, 5)
    assert sorted(sent) == sorted(f"r{i}".encode() for i in range(5))
    assert counters.forward_buffer_errors_total == 2
    assert counters.buffer_last_error is not None
    assert counters.buffer_last_error.startswith("lease: OSError")


async def test_failed_release_is_retried_before_the_next_lease() -> None:
    # Kafka fails a send, so the batch goes back to the buffer, and that release fails twice.
    buffer = FlakyBuffer({"release": 2})
    sent, counters = await forward_all(buffer, 6, kafka_timeouts=1)
    assert set(sent) == {f"r{i}".encode() for i in range(6)}
    assert counters.forward_buffer_errors_total == 2
    assert counters.kafka_errors_total == 1


async def test_failed_ack_and_release_together_still_lose_nothing() -> None:
    buffer = FlakyBuffer({"ack": 2, "release": 2})
    sent, counters = await forward_all(buffer, 8)
    assert set(sent) == {f"r{i}".encode() for i in range(8)}
    assert counters.forward_buffer_errors_total == 4
    assert counters.forwarded_total == 8


async def test_an_error_that_is_not_the_buffer_failing_ends_the_forwarder() -> None:
    # A closed buffer or a corrupt file is not retried: the task ends and the gateway turns unready.
    buffer = FlakyBuffer({"ack": 1}, RuntimeError("leased records missing from the file"))
    with pytest.raises(RuntimeError, match="missing"):
        await forward_all(buffer, 3)


def test_error_episode_reports_its_start_and_its_length() -> None:
    episode = ErrorEpisode()
    assert episode.succeeded() == 0
    assert [episode.failed() for _ in range(3)] == [True, False, False]
    assert episode.succeeded() == 3
    assert episode.succeeded() == 0
    assert episode.failed() is True
