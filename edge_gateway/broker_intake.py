"""Embedded broker -> buffer, inside the broker's process: a device's PUBLISH on a telemetry or
status topic (or, with the Sparkplug host on, an edge node's spBv1.0 message) goes from its
session (read by edge_gateway.broker_reader) straight to the intake (edge_gateway.intake), and
its PUBACK leaves only once the intake has committed it. A gateway killed at any moment has
acknowledged nothing it could lose: the device still holds the rest and sends it again when it
reconnects.

PUBACKs leave in the order their PUBLISHes came (MQTT-4.6.0-2), in one socket write per session
for what was committed since the loop last released PUBACKs."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.publish import PublishPacket

from edge_gateway import broker_reader
from edge_gateway.intake import CommandCallback, Inbound, IntakeTarget, now_ms
from edge_gateway.loop_wakeup import LoopWakeup

log = logging.getLogger("edge.broker_intake")

_PUBACK = b"\x40\x02"


@dataclass(slots=True)
class _Pending:
    packet_id: int
    ready: bool = False


class AckOrder:
    """One session's QoS 1 PUBLISHes awaiting their PUBACK, in the order received; a PUBACK may
    leave once it and every earlier one are ready."""

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()

    def add(self, packet_id: int, *, ready: bool = False) -> _Pending:
        pending = _Pending(packet_id, ready)
        self._queue.append(pending)
        return pending

    def pop_ready(self) -> list[int]:
        out = []
        while self._queue and self._queue[0].ready:
            out.append(self._queue.popleft().packet_id)
        return out

    def __len__(self) -> int:
        return len(self._queue)


def pubacks(packet_ids: list[int]) -> bytes:
    return b"".join(_PUBACK + pid.to_bytes(2, "big") for pid in packet_ids)


class BrokerHooks(Protocol):
    """What a session's intake needs from the broker (edge_gateway.broker._AclBroker)."""

    def allows_publish(self, handler: BrokerProtocolHandler, topic: str) -> bool: ...

    def relay(
        self, handler: BrokerProtocolHandler, topic: str, data: bytes, qos: int, retain: bool
    ) -> Coroutine[Any, Any, None]: ...


class SessionIntake:
    """Takes over one connection's PUBLISH handling (amqtt's `handle_publish`)."""

    def __init__(
        self, handler: BrokerProtocolHandler, intake: BrokerIntake, hooks: BrokerHooks
    ) -> None:
        self._handler = handler
        self._intake = intake
        self._hooks = hooks
        self._order = AckOrder()
        self._put_lock = asyncio.Lock()
        self._default = handler.handle_publish

    def install(self) -> None:
        # amqtt's reader loop calls `self.handle_publish`: this instance's own takes precedence.
        self._handler.handle_publish = self.handle_publish
        broker_reader.install(self._handler, self.publish)

    async def handle_publish(self, packet: PublishPacket) -> None:
        """A PUBLISH decoded by amqtt (what the session's reader does not parse itself)."""
        topic, data, qos = packet.topic_name, packet.data, packet.qos
        variable = packet.variable_header
        packet_id = variable.packet_id if variable is not None else None
        if topic is None or data is None or qos == 2 or (qos == 1 and packet_id is None):
            await self._default(packet)  # QoS 2 and malformed packets: amqtt's own flow
            return
        if "#" in topic or "+" in topic:
            await self._default(packet)  # amqtt closes the connection (MQTT-3.3.2-2)
            return
        await self.publish(topic, bytes(data), qos, packet_id, packet.retain_flag)

    async def publish(
        self, topic: str, payload: bytes, qos: int, packet_id: int | None, retain: bool
    ) -> None:
        """A QoS 0 or 1 PUBLISH on a concrete topic, in the order the session sent it."""
        ours = self._intake.takes(topic)
        allowed = self._hooks.allows_publish(self._handler, topic)
        pending = None
        if qos == 1:
            assert packet_id is not None
            # Anything the intake does not store is acknowledged at once, but still in order.
            pending = self._order.add(packet_id, ready=not (ours and allowed))
        if ours and allowed:
            token = None if pending is None else (self, pending)
            await self._put(Inbound(topic, payload, now_ms(), token))
        elif pending is not None:
            self.flush()
        if allowed:
            await self._hooks.relay(self._handler, topic, payload, qos, retain)

    async def _put(self, message: Inbound) -> None:
        # FIFO: a message never overtakes an earlier one of its session that waited for room.
        if not self._put_lock.locked():
            try:
                self._intake.put_nowait(message)
                return
            except queue.Full:
                pass
        async with self._put_lock:
            await asyncio.to_thread(self._intake.put, message)

    def flush(self) -> None:
        """Send every PUBACK that is due, in one write."""
        ready = self._order.pop_ready()
        writer = self._handler.writer
        if not ready or writer is None:
            return  # disconnected: the device sends these again when it reconnects
        try:
            writer.write(pubacks(ready))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("puback_write_failed", extra={"error": type(exc).__name__})


class BrokerIntake:
    """The embedded broker's sessions -> the intake -> PUBACKs back on the event loop."""

    def __init__(self, target: IntakeTarget, on_commands: CommandCallback = lambda _: None) -> None:
        """`on_commands`: publishes what the Sparkplug host asks for (called on the writer
        thread)."""
        self._target = target
        self._intake = target.intake(on_durable=self._durable, on_commands=on_commands)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Committed tokens, oldest first, for the loop to release: commits that come while a
        # release waits for the loop share it (one cross-thread wake-up, not one per commit).
        self._committed: deque[object] = deque()
        self._wakeup: LoopWakeup | None = None
        self.subscribed = threading.Event()  # the intake takes messages (as the bridge's is)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wakeup = LoopWakeup(loop, self._release_committed)
        self._intake.start()
        self.subscribed.set()

    def attach(self, handler: BrokerProtocolHandler, hooks: BrokerHooks) -> None:
        SessionIntake(handler, self, hooks).install()

    def takes(self, topic: str) -> bool:
        return self._target.takes(topic)

    def put_nowait(self, message: Inbound) -> None:
        self._intake.put_nowait(message)

    def put(self, message: Inbound) -> None:
        self._intake.put(message)

    async def offer(self, topic: str, data: bytes) -> None:
        """A message the broker publishes itself (a will, QoS 2 after amqtt's own flow): stored
        without an acknowledgement to hold back."""
        if self._target.takes(topic):
            message = Inbound(topic, data, now_ms())
            try:
                self._intake.put_nowait(message)
            except queue.Full:
                await asyncio.to_thread(self._intake.put, message)

    def drain(self, timeout: float) -> None:
        self._intake.drain(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.subscribed.clear()
        self._intake.stop(timeout)

    def _durable(self, tokens: list[object]) -> None:
        # Writer thread. Appended before the wake-up: the release that runs next sees them.
        self._committed.extend(tokens)
        if self._wakeup is not None and self._loop is not None and not self._loop.is_closed():
            self._wakeup()

    def _release_committed(self) -> None:
        committed = self._committed
        tokens = [committed.popleft() for _ in range(len(committed))]
        if tokens:
            _release(tokens)


def _release(tokens: list[object]) -> None:
    sessions: dict[int, SessionIntake] = {}
    for token in tokens:
        session, pending = cast(tuple[SessionIntake, _Pending | None], token)
        if pending is not None:
            pending.ready = True
        sessions.setdefault(id(session), session)
    for session in sessions.values():
        session.flush()
