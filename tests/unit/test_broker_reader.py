"""The embedded broker's own reader loop (edge_gateway.broker_reader) against amqtt's packet
classes: the same PUBLISH fields from the same bytes, complete packets only, in order, and
everything it does not parse itself handed to amqtt's handlers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from amqtt.adapters import BufferReader, StreamReaderAdapter
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.pingreq import PingReqPacket
from amqtt.mqtt.publish import PublishPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_gateway import broker_reader
from edge_gateway.broker_reader import MalformedLength, parse_publish, split_packet


def publish(topic: str, payload: bytes, qos: int, packet_id: int | None, retain: bool) -> bytes:
    data: bytes = PublishPacket.build(topic, payload, packet_id, False, qos, retain).to_bytes()
    return data


def raw_publish(topic: bytes, payload: bytes, qos: int, packet_id: int = 1) -> bytes:
    """A PUBLISH packet amqtt would refuse to build (wildcards in the topic)."""
    body = len(topic).to_bytes(2, "big") + topic
    body += packet_id.to_bytes(2, "big") if qos else b""
    body += payload
    assert len(body) < 128
    return bytes([0x30 | qos << 1, len(body)]) + body


async def amqtt_reads(data: bytes) -> tuple[str, bytes, int, int | None, bool]:
    """What amqtt's own classes make of one PUBLISH packet."""
    reader = BufferReader(data)
    header = await MQTTFixedHeader.from_stream(reader)
    assert header is not None
    packet = await PublishPacket.from_stream(reader, fixed_header=header)
    assert packet.topic_name is not None
    assert packet.data is not None
    variable = packet.variable_header
    packet_id = variable.packet_id if variable is not None else None
    return packet.topic_name, bytes(packet.data), packet.qos, packet_id, packet.retain_flag


def ours(data: bytes) -> tuple[str, bytes, int, int | None, bool] | None:
    split = split_packet(data, 0)
    assert split is not None
    first, start, end = split
    assert end == len(data)
    assert first >> 4 == 3  # PUBLISH
    return parse_publish(first & 0x0F, data[start:end])


TOPICS = st.text(min_size=1, max_size=60).filter(lambda t: "#" not in t and "+" not in t)


@settings(max_examples=300, deadline=None, database=None)
@given(
    TOPICS,
    st.binary(max_size=300),
    st.sampled_from([0, 1]),
    st.integers(min_value=1, max_value=65535),
    st.booleans(),
)
def test_a_publish_reads_as_amqtt_reads_it(
    topic: str, payload: bytes, qos: int, packet_id: int, retain: bool
) -> None:
    data = publish(topic, payload, qos, packet_id if qos else None, retain)
    assert ours(data) == asyncio.run(amqtt_reads(data))


@pytest.mark.parametrize("size", [0, 1, 120, 127, 128, 16_383, 16_384, 70_000, 2_097_152])
def test_every_remaining_length_encoding(size: int) -> None:
    data = publish("plant/s/d/telemetry", b"x" * size, 1, 7, False)
    assert ours(data) == ("plant/s/d/telemetry", b"x" * size, 1, 7, False)


def test_an_incomplete_packet_is_waited_for_and_packets_split_in_order() -> None:
    first = publish("a/b", b"one", 1, 1, False)
    second = publish("a/c", b"two" * 100, 0, None, True)
    stream = first + second
    for cut in range(len(first)):
        assert split_packet(stream[:cut], 0) is None
    split = split_packet(stream, 0)
    assert split is not None
    assert split[2] == len(first)
    for cut in range(len(first), len(stream)):
        assert split_packet(stream[:cut], len(first)) is None
    assert split_packet(stream, len(first)) == (stream[len(first)], len(first) + 3, len(stream))


@pytest.mark.parametrize(
    "data",
    [
        raw_publish(b"plant/+/d/telemetry", b"{}", 1),  # wildcards: amqtt discards it
        raw_publish(b"plant/#", b"{}", 0),
        bytes([0x34, 0x07, 0x00, 0x01, 0x61, 0x00, 0x05, 0x7B, 0x7D]),  # QoS 2
        bytes([0x32, 0x05, 0x00, 0x00, 0x00, 0x05, 0x7B]),  # empty topic
        bytes([0x32, 0x06, 0x00, 0x01, 0xFF, 0x00, 0x05, 0x7B]),  # topic not UTF-8
        bytes([0x32, 0x03, 0x00, 0x05, 0x61]),  # topic longer than the packet
        bytes([0x32, 0x04, 0x00, 0x01, 0x61, 0x00]),  # QoS 1 without a whole packet id
    ],
)
def test_what_amqtt_should_take_is_left_to_it(data: bytes) -> None:
    assert ours(data) is None


def test_a_remaining_length_over_four_bytes_is_malformed() -> None:
    with pytest.raises(MalformedLength):
        split_packet(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) + b"x" * 10, 0)


class FakeHandler:
    """What the reader loop uses of amqtt's BrokerProtocolHandler."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.reader = StreamReaderAdapter(stream)
        self.session = SimpleNamespace(keep_alive=0, client_id="dev")
        self.plugins_manager = SimpleNamespace(
            _event_plugin_callbacks={}, fire_event=self._fire_event
        )
        self._reader_ready = asyncio.Event()
        self._reader_stopped = asyncio.Event()
        self.events: list[Any] = []

    async def _reader_loop(self) -> None:
        raise AssertionError("amqtt's own loop ran")

    async def _fire_event(self, *_: object, **__: object) -> None:
        pass

    async def handle_pingreq(self, packet: PingReqPacket) -> None:
        self.events.append(("pingreq", type(packet).__name__))

    async def handle_publish(self, packet: PublishPacket) -> None:
        self.events.append(("amqtt_publish", packet.topic_name, packet.qos))

    async def handle_connection_closed(self) -> None:
        self.events.append("closed")

    async def stop(self) -> None:
        self.events.append("stopped")


async def test_the_loop_takes_publishes_in_order_across_reads_and_hands_on_the_rest() -> None:
    stream = asyncio.StreamReader()
    handler = FakeHandler(stream)
    taken: list[tuple[str, bytes, int, int | None, bool]] = []

    async def on_publish(*fields: Any) -> None:
        taken.append(fields)

    broker_reader.install(handler, on_publish)
    task = asyncio.create_task(handler._reader_loop())
    wire = (
        publish("plant/s/d1/telemetry", b'{"seq":1}', 1, 1, False)
        + PingReqPacket().to_bytes()
        + publish("plant/s/d1/telemetry", b'{"seq":2}', 0, None, True)
        + raw_publish(b"plant/+/d1/telemetry", b"{}", 1, 2)
        + publish("plant/s/d1/telemetry", b'{"seq":3}', 1, 3, False)
    )
    for i in range(0, len(wire), 5):  # arbitrary cuts: packets span reads
        stream.feed_data(wire[i : i + 5])
        await asyncio.sleep(0)
    stream.feed_eof()
    await asyncio.wait_for(task, 5)
    assert taken == [
        ("plant/s/d1/telemetry", b'{"seq":1}', 1, 1, False),
        ("plant/s/d1/telemetry", b'{"seq":2}', 0, None, True),
        ("plant/s/d1/telemetry", b'{"seq":3}', 1, 3, False),
    ]
    # amqtt's classes refuse a wildcard topic (MQTT-3.3.2-2): discarded, as amqtt's loop does.
    assert not [e for e in handler.events if e[0] == "amqtt_publish"]
    assert ("pingreq", "PingReqPacket") in handler.events
    assert handler.events[-2:] == ["closed", "stopped"]
    assert handler._reader_stopped.is_set()
