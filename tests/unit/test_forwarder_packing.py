"""Version 2 `iot.telemetry` values: the forwarder packs each device's readings of one send into
one Kafka record, in order, and a record's fate (acked, retried, refused) is that of every
reading it carries. Kafka is the in-memory fake of test_forwarder_buffer_errors.py."""

from __future__ import annotations

import asyncio
from typing import cast

from aiokafka import AIOKafkaProducer

from edge_gateway.buffer import BufferRecord, MemoryBuffer, StoredRecord
from edge_gateway.forwarder import Forwarder, outgoing
from edge_gateway.settings import EdgeSettings
from edge_gateway.stats import GatewayCounters
from protocol import NormalisedReading, decode_telemetry_value, encode, topics
from tests.support.waiting import async_wait_until
from tests.unit.test_forwarder_buffer_errors import FakeProducer


def reading(device: str, seq: int, *, padding: int = 0) -> NormalisedReading:
    return NormalisedReading(
        site="s1",
        device_id=device,
        type=None,
        ts=1_000 + seq,
        seq=seq,
        metrics={"x": float(seq), **{f"p{i}": 0.0 for i in range(padding)}},
        gateway_id="gw",
        received_ts=1_000 + seq,
    )


def telemetry(r: NormalisedReading) -> BufferRecord:
    return BufferRecord(topics.TELEMETRY, r.device_id.encode(), encode(r), r.ts)


def stored(records: list[BufferRecord]) -> list[StoredRecord]:
    return [StoredRecord(i + 1, r) for i, r in enumerate(records)]


def readings_of(values: list[bytes]) -> list[NormalisedReading]:
    return [r for value in values for r in decode_telemetry_value(value)]


def test_version_1_sends_each_record_as_it_is() -> None:
    batch = stored([telemetry(reading("a", i)) for i in range(3)])
    out = outgoing(batch, 1)
    assert [(o.ids, o.value) for o in out] == [([s.id], s.record.value) for s in batch]


def test_version_2_packs_each_device_in_order_and_leaves_other_topics_alone() -> None:
    status = BufferRecord(topics.DEVICE_STATUS, b"a", b'{"state":"online"}', 5)
    dead = BufferRecord(topics.TELEMETRY_DLQ, b"a", b"junk", 6, (("error", b"invalid_json"),))
    records = [telemetry(reading("a", 0)), telemetry(reading("b", 0)), status]
    records += [telemetry(reading("a", 1)), dead, telemetry(reading("b", 1))]
    records += [telemetry(reading("a", 2))]
    out = outgoing(stored(records), 2)
    by_topic = {o.topic: o for o in out if o.topic != topics.TELEMETRY}
    assert by_topic[topics.DEVICE_STATUS].value == status.value
    assert by_topic[topics.TELEMETRY_DLQ].headers == [("error", b"invalid_json")]
    packed = {o.key: o for o in out if o.topic == topics.TELEMETRY}
    assert packed[b"a"].ids == [1, 4, 7]
    assert packed[b"b"].ids == [2, 6]
    assert [r.seq for r in decode_telemetry_value(packed[b"a"].value)] == [0, 1, 2]
    assert packed[b"a"].timestamp_ms == 1_000  # the oldest reading's
    assert packed[b"a"].value.startswith(b'{"v":2,')


def test_version_2_sends_a_lone_reading_as_a_version_2_value() -> None:
    (one,) = outgoing(stored([telemetry(reading("a", 0))]), 2)
    assert one.value.startswith(b'{"v":2,')
    assert decode_telemetry_value(one.value) == [reading("a", 0)]


def test_a_pack_is_closed_before_it_outgrows_the_limit_and_order_is_kept() -> None:
    records = [telemetry(reading("a", i, padding=20)) for i in range(10)]
    size = len(records[0].value)
    out = outgoing(stored(records), 2, max_bytes=3 * size)
    assert [len(o.ids) for o in out] == [3, 3, 3, 1]
    assert [r.seq for r in readings_of([o.value for o in out])] == list(range(10))
    # A reading larger than the limit still goes, alone.
    (alone,) = outgoing(stored(records[:1]), 2, max_bytes=10)
    assert alone.ids == [1]


async def forward(
    records: list[BufferRecord], *, kafka_timeouts: int = 0
) -> tuple[list[bytes], GatewayCounters]:
    settings = EdgeSettings(forward_backoff_max_s=0.02, forward_batch_max=5)
    assert settings.kafka_value_version == 2  # the default
    buffer, counters = MemoryBuffer(max_bytes=10_000_000), GatewayCounters()
    sent: list[bytes] = []
    producer = FakeProducer(sent, kafka_timeouts)
    forwarder = Forwarder(
        settings, buffer, counters, producer_factory=lambda _: cast(AIOKafkaProducer, producer)
    )
    buffer.append(records)
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))

    async def drained() -> bool:
        return buffer.stats().depth == 0

    try:
        await async_wait_until(drained, 10, "buffer drained")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return sent, counters


async def test_packed_records_carry_every_reading_once_and_count_readings() -> None:
    records = [telemetry(reading(f"d{i % 3}", i)) for i in range(12)]
    sent, counters = await forward(records)
    assert len(sent) < len(records)
    assert sorted(r.seq or 0 for r in readings_of(sent)) == list(range(12))
    assert counters.forwarded_total == 12  # buffer records, not Kafka records


async def test_a_failed_packed_record_is_sent_again_whole() -> None:
    records = [telemetry(reading("a", i)) for i in range(10)]
    sent, counters = await forward(records, kafka_timeouts=1)
    # The first send failed: its readings stayed in the buffer and went out again, none lost.
    assert {r.seq for r in readings_of(sent)} == set(range(10))
    assert counters.kafka_errors_total == 1
    assert counters.forwarded_total == 10
