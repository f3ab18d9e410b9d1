"""A cheaper reader loop for the embedded broker's sessions (amqtt's `_reader_loop`, pinned
amqtt 0.12.1): reads the socket in chunks and takes each QoS 0/1 PUBLISH straight from the
bytes, in order, with no task, timeout task or packet objects of its own. Everything else (and
any PUBLISH it does not parse itself) is decoded by amqtt's own packet classes and dispatched
as amqtt does.

amqtt spends about 60 us of the event loop per PUBLISH (a `wait_for` task per fixed header,
a dozen awaited one-field reads, a task per packet): the loop, not the intake, bounded the
embedded broker. A session whose PUBLISH waits for room in the intake stops reading its socket,
which pushes back on that device alone."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from amqtt.adapters import BufferReader, StreamReaderAdapter
from amqtt.errors import MQTTError, NoDataError
from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.packet import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RESERVED_0,
    RESERVED_15,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTFixedHeader,
)
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

log = logging.getLogger("edge.broker_reader")

_CHUNK = 64 * 1024  # what a read takes at most: bounds how long one session holds the loop
# amqtt's handler method per packet type (CONNECT is awaited in place, as amqtt does).
_HANDLERS = {
    CONNACK: "handle_connack",
    SUBSCRIBE: "handle_subscribe",
    UNSUBSCRIBE: "handle_unsubscribe",
    SUBACK: "handle_suback",
    UNSUBACK: "handle_unsuback",
    PUBACK: "handle_puback",
    PUBREC: "handle_pubrec",
    PUBREL: "handle_pubrel",
    PUBCOMP: "handle_pubcomp",
    PINGREQ: "handle_pingreq",
    PINGRESP: "handle_pingresp",
    PUBLISH: "handle_publish",
    DISCONNECT: "handle_disconnect",
}

# topic, payload, qos, packet id (None for QoS 0), retain
OnPublish = Callable[[str, bytes, int, int | None, bool], Awaitable[None]]


class MalformedLength(Exception):
    """A remaining length longer than MQTT's four bytes."""


def split_packet(buf: bytes | bytearray, start: int) -> tuple[int, int, int] | None:
    """(first byte, body start, body end) of the packet at `start`, or None while incomplete."""
    end = len(buf)
    pos = start + 1
    length, shift = 0, 0
    while True:
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 21:
            raise MalformedLength(bytes(buf[start + 1 : pos]).hex())
    if pos + length > end:
        return None
    return buf[start], pos, pos + length


def parse_publish(flags: int, body: bytes) -> tuple[str, bytes, int, int | None, bool] | None:
    """A QoS 0 or 1 PUBLISH's topic, payload, qos, packet id and retain flag; None for what
    amqtt's own classes and flow should take (QoS 2, an empty, undecodable or wildcard topic,
    a short body)."""
    qos = (flags >> 1) & 0x03
    if qos > 1 or len(body) < 2:
        return None
    topic_end = 2 + (body[0] << 8 | body[1])
    header_end = topic_end + 2 * qos
    if topic_end == 2 or header_end > len(body):
        return None
    try:
        topic = body[2:topic_end].decode("utf-8")
    except UnicodeDecodeError:
        return None  # amqtt takes it as the bytes' repr: left to amqtt
    if "#" in topic or "+" in topic:
        return None  # amqtt's packet classes refuse it and its loop discards it (MQTT-3.3.2-2)
    packet_id = body[topic_end] << 8 | body[topic_end + 1] if qos else None
    return topic, body[header_end:], qos, packet_id, bool(flags & 0x01)


def install(handler: BrokerProtocolHandler, on_publish: OnPublish) -> None:
    """Replace this connection's reader loop, from its start on (amqtt's `start()` creates its
    reader task from `_reader_loop`, once the connection is attached)."""
    amqtt_loop = handler._reader_loop

    async def reader_loop() -> None:
        if _covered(handler):
            assert isinstance(handler.reader, StreamReaderAdapter)
            await _ReaderLoop(handler, handler.reader._reader, on_publish).run()
        else:
            await amqtt_loop()

    handler._reader_loop = reader_loop


def _covered(handler: BrokerProtocolHandler) -> bool:
    """False (amqtt's loop kept) for a transport or a plugin set this loop does not cover."""
    if not isinstance(handler.reader, StreamReaderAdapter):
        return False
    # A plugin that wants every packet object gets amqtt's loop, which makes them.
    return MQTTEvents.PACKET_RECEIVED not in handler.plugins_manager._event_plugin_callbacks


class _ReaderLoop:
    def __init__(
        self,
        handler: BrokerProtocolHandler,
        stream: asyncio.StreamReader,
        on_publish: OnPublish,
    ) -> None:
        self._handler = handler
        self._stream = stream
        self._on_publish = on_publish
        self._tasks: collections.deque[asyncio.Task[None]] = collections.deque()

    async def run(self) -> None:
        handler = self._handler
        assert handler.session is not None
        assert handler._reader_ready is not None
        keepalive: int | None = handler.session.keep_alive
        if keepalive is not None and keepalive <= 0:
            keepalive = None
        buf = bytearray()
        handler._reader_ready.set()
        try:
            while True:
                try:
                    async with asyncio.timeout(keepalive):
                        chunk = await self._stream.read(_CHUNK)
                except TimeoutError:
                    handler.handle_read_timeout()  # what amqtt does (nothing, for a broker)
                    continue
                if not chunk:
                    break  # EOF
                buf += chunk
                consumed = await self._packets(buf)
                if consumed is None:
                    break
                del buf[:consumed]
        except asyncio.CancelledError:
            pass
        except (ConnectionError, MalformedLength) as exc:
            log.debug("mqtt_reader_closed", extra={"error": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001  # as amqtt: a failure ends this session only
            log.warning("mqtt_reader_failed", extra={"error": repr(exc)})
        while self._tasks:
            self._tasks.popleft().cancel()
        await handler.handle_connection_closed()
        assert handler._reader_stopped is not None
        handler._reader_stopped.set()
        await handler.stop()

    async def _packets(self, buf: bytearray) -> int | None:
        """Handle every complete packet in `buf`; how many bytes they took (None: close)."""
        pos = 0
        while True:
            split = split_packet(buf, pos)
            if split is None:
                return pos
            first, start, end = split
            pos = end
            kind = first >> 4
            if kind == PUBLISH:
                publish = parse_publish(first & 0x0F, bytes(buf[start:end]))
                if publish is not None:
                    await self._on_publish(*publish)
                    continue
            if not await self._amqtt_packet(kind, first & 0x0F, bytes(buf[start:end])):
                return None
            while self._tasks and self._tasks[0].done():
                self._tasks.popleft()

    async def _amqtt_packet(self, kind: int, flags: int, body: bytes) -> bool:
        """One packet through amqtt's own classes and handlers; False to close."""
        handler = self._handler
        if kind in (RESERVED_0, RESERVED_15):
            log.warning("mqtt_reserved_packet", extra={"packet_type": kind})
            await handler.handle_connection_closed()
            return True
        header = MQTTFixedHeader(kind, flags, len(body))
        try:
            packet = await packet_class(header).from_stream(BufferReader(body), fixed_header=header)
        except (MQTTError, NoDataError):
            return True  # amqtt discards it and reads on
        await handler.plugins_manager.fire_event(
            MQTTEvents.PACKET_RECEIVED, packet=packet, session=handler.session
        )
        if kind == CONNECT:
            await handler.handle_connect(packet)
        elif kind == PUBLISH and packet.qos < 2:
            # In place, so its PUBACK keeps its order among the ones parsed here; QoS 2 waits
            # for a PUBREL this loop reads, so it runs as a task, as in amqtt.
            await handler.handle_publish(packet)
        elif kind in _HANDLERS:
            self._tasks.append(asyncio.create_task(getattr(handler, _HANDLERS[kind])(packet)))
        return True
