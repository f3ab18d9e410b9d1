"""The intake (MQTT messages -> buffer, acknowledged only once durable) and the embedded broker's
PUBACK ordering, without a broker."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from edge_gateway.broker_intake import AckOrder, pubacks
from edge_gateway.buffer import AppendResult, BufferRecord, MemoryBuffer, SqliteBuffer
from edge_gateway.intake import Inbound, Intake
from edge_gateway.routing import MessageRouter
from edge_gateway.stats import GatewayCounters
from tests.support.waiting import wait_until

TS = 1_700_000_000_000


def telemetry(device: str, seq: int) -> Inbound:
    body = {"ts": TS + seq, "seq": seq, "type": "rig", "metrics": {"v": float(seq)}}
    return Inbound(f"plant/s1/{device}/telemetry", json.dumps(body).encode(), TS, ack=seq)


class GatedBuffer(MemoryBuffer):
    """A buffer whose appends wait for the test, and can fail on demand."""

    def __init__(self) -> None:
        super().__init__(max_bytes=10_000_000)
        self.gate = threading.Event()
        self.gate.set()
        self.failures = 0
        self.batches: list[int] = []

    def append(self, records: Sequence[BufferRecord]) -> AppendResult:
        self.gate.wait(10)
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        self.batches.append(len(records))
        return super().append(records)


@pytest.fixture
def buffer() -> GatedBuffer:
    return GatedBuffer()


def make_intake(buffer: GatedBuffer, durable: list[object]) -> tuple[Intake, GatewayCounters]:
    counters = GatewayCounters()
    router = MessageRouter("gw", max_past_ms=10**15, max_future_ms=10**15)
    intake = Intake(buffer, router, counters, batch_max=100, on_durable=durable.extend)
    return intake, counters


@pytest.fixture
def started(buffer: GatedBuffer) -> Iterator[tuple[Intake, GatewayCounters, list[object]]]:
    durable: list[object] = []
    intake, counters = make_intake(buffer, durable)
    intake.start()
    yield intake, counters, durable
    buffer.gate.set()
    intake.stop()


def test_a_message_is_acknowledged_only_after_its_commit(
    buffer: GatedBuffer, started: tuple[Intake, GatewayCounters, list[object]]
) -> None:
    intake, counters, durable = started
    buffer.gate.clear()
    intake.put(telemetry("d1", 0))
    wait_until(lambda: intake._inbox.unfinished_tasks == 1, 5, "message taken")
    assert durable == []
    buffer.gate.set()
    wait_until(lambda: durable == [0], 5, "acknowledged after the commit")
    assert buffer.stats().depth == 1
    assert counters.readings_total == 1


def test_what_arrives_during_a_commit_is_the_next_batch_in_order(
    buffer: GatedBuffer, started: tuple[Intake, GatewayCounters, list[object]]
) -> None:
    intake, _, durable = started
    buffer.gate.clear()
    intake.put(telemetry("d1", 0))
    wait_until(lambda: intake._inbox.qsize() == 0, 5, "first batch taken")
    for seq in range(1, 51):
        intake.put(telemetry("d1", seq))
    buffer.gate.set()
    wait_until(lambda: len(durable) == 51, 5, "every message acknowledged")
    assert durable == list(range(51))
    assert buffer.batches == [1, 50]  # group commit: no timer, no batch per message


def test_a_failed_append_is_retried_and_nothing_is_acknowledged_meanwhile(
    buffer: GatedBuffer, started: tuple[Intake, GatewayCounters, list[object]]
) -> None:
    intake, counters, durable = started
    buffer.failures = 2
    intake.put(telemetry("d1", 0))
    wait_until(lambda: durable == [0], 10, "acknowledged after the retries")
    assert counters.buffer_errors_total == 2
    assert buffer.stats().depth == 1


def test_a_dead_letter_is_stored_counted_and_acknowledged(
    buffer: GatedBuffer, started: tuple[Intake, GatewayCounters, list[object]]
) -> None:
    intake, counters, durable = started
    intake.put(Inbound("plant/s1/d1/telemetry", b"{not json", TS, ack="bad"))
    wait_until(lambda: durable == ["bad"], 5, "acknowledged")
    assert counters.dead_lettered_total == 1
    assert buffer.stats().depth == 1  # the dead letter goes to Kafka with its reason


def test_stop_commits_what_was_queued(buffer: GatedBuffer) -> None:
    durable: list[object] = []
    intake, _ = make_intake(buffer, durable)
    for seq in range(10):
        intake.put(telemetry("d1", seq))
    intake.start()
    intake.stop()
    assert durable == list(range(10))
    assert buffer.stats().depth == 10


def test_pubacks_leave_in_the_order_the_publishes_came() -> None:
    order = AckOrder()
    first, second = order.add(1), order.add(2)
    order.add(3, ready=True)  # not stored (another topic): due at once, but behind 1 and 2
    assert order.pop_ready() == []
    second.ready = True
    assert order.pop_ready() == []
    first.ready = True
    assert order.pop_ready() == [1, 2, 3]
    assert len(order) == 0


def test_pubacks_are_mqtt_puback_packets() -> None:
    assert pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"


def test_sqlite_acks_commit_without_fsync_and_appends_keep_full(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with SqliteBuffer(path, max_bytes=10_000_000, synchronous="FULL") as buffer:
        buffer.append([BufferRecord("t", None, b"v", TS)])
        (leased,) = buffer.lease(10)
        assert buffer.ack([leased.id]) == 1
        (level,) = buffer._conn.execute("PRAGMA synchronous").fetchone()
        assert level == 2  # FULL again after the relaxed ack
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone() == (0,)


def test_a_metadata_record_is_appended_as_is_in_order_with_the_readings(
    buffer: GatedBuffer, started: tuple[Intake, GatewayCounters, list[object]]
) -> None:
    intake, counters, durable = started
    record = BufferRecord("iot.device-metadata", b"d1", b'{"v": 1}', TS)
    intake.put(telemetry("d1", 0))
    intake.put(Inbound("", b"", TS, metadata=record))
    intake.put(telemetry("d1", 1))
    wait_until(lambda: durable == [0, 1], 5, "readings acknowledged")
    topics = [r.record.topic for r in buffer.lease(10)]
    assert topics == ["iot.telemetry", "iot.device-metadata", "iot.telemetry"]
    assert buffer.lease(10) == []
    assert (counters.received_total, counters.readings_total) == (2, 2)
    assert (counters.device_metadata_total, counters.dead_lettered_total) == (1, 0)
