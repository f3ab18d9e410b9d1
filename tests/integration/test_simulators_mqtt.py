"""The simulator runner against a real MQTT broker (embedded amqtt on a free port)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from amqtt.broker import Broker
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway.simulators import (
    SimulatorConfig,
    SimulatorRunner,
    SimulatorStats,
    run_simulators,
)
from protocol.models import DevicePayload, StatusPayload
from protocol.topics import parse_mqtt_topic

pytestmark = pytest.mark.integration

DEVICES = ("cnc-01", "press-01", "conveyor-01", "compressor-01", "cleanroom-01")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def close_leaked_transports(port: int) -> None:
    """Close the server side of connections that amqtt 0.12 leaves open after a client vanished.

    Its StreamWriterAdapter.close() awaits drain() before close(); on a reset connection drain()
    raises, the handler swallows the OSError and the transport is never closed. Left alone, the
    garbage collector reports it as a ResourceWarning in whatever test happens to run then, so
    the tests that start a broker hold automatic collection off until this has run.
    """
    await asyncio.sleep(0)  # let the broker's handlers finish their teardown
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Transport) and not obj.is_closing():
            sockname = obj.get_extra_info("sockname")
            if isinstance(sockname, tuple) and sockname[1] == port:
                obj.close()
    await asyncio.sleep(0)  # the transport closes its socket on the next loop iteration


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def start_broker(port: int) -> Broker:
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    broker = Broker(broker_config(port))
    await broker.start()
    return broker


@pytest.fixture
async def broker_port(no_automatic_gc: None) -> AsyncIterator[int]:
    port = free_port()
    broker = await start_broker(port)
    yield port
    await broker.shutdown()
    await close_leaked_transports(port)


async def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a condition on the event loop until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Received:
    device_id: str
    kind: str
    body: dict[str, Any]
    retained: bool


class Subscriber:
    """A paho client on its own thread that records everything under plant/."""

    def __init__(self, port: int, client_id: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("plant/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = parse_mqtt_topic(message.topic)
        received = Received(
            topic.device_id, topic.kind, json.loads(message.payload), message.retain
        )
        with self._lock:
            self.messages.append(received)

    async def ready(self) -> Subscriber:
        await wait_for(self._subscribed.is_set, 10, "SUBACK")
        return self

    def snapshot(self, kind: str | None = None, device_id: str | None = None) -> list[Received]:
        with self._lock:
            return [
                m
                for m in self.messages
                if (kind is None or m.kind == kind)
                and (device_id is None or m.device_id == device_id)
            ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def subscriber(broker_port: int) -> AsyncIterator[Subscriber]:
    sub = Subscriber(broker_port, "test-subscriber")
    yield await sub.ready()
    sub.close()


async def retained_statuses(port: int) -> dict[str, Received]:
    """What a client connecting now gets: the retained status of every device."""
    late = await Subscriber(port, "late-subscriber").ready()
    try:
        await wait_for(lambda: len(late.snapshot("status")) >= len(DEVICES), 10, "retained status")
        return {m.device_id: m for m in late.snapshot("status")}
    finally:
        late.close()


async def test_every_device_publishes_its_readings_in_order_then_goes_offline_cleanly(
    broker_port: int, subscriber: Subscriber
) -> None:
    config = SimulatorConfig(
        port=broker_port, rate_hz=50.0, max_messages_per_device=20, anomaly_probability=0.0
    )
    stats = await asyncio.wait_for(run_simulators(config, asyncio.Event()), timeout=30)

    assert (stats.devices, stats.published, stats.acked, stats.dropped) == (5, 100, 100, 0)
    assert stats.connected == 0
    await wait_for(lambda: len(subscriber.snapshot("telemetry")) >= 100, 10, "100 readings")
    for device_id in DEVICES:
        readings = subscriber.snapshot("telemetry", device_id)
        assert [r.body["seq"] for r in readings] == list(range(20)), device_id
        for reading in readings:
            DevicePayload.model_validate(reading.body)
        stamps = [r.body["ts"] for r in readings]
        assert all(b - a == 20 for a, b in pairwise(stamps)), stamps
    # Phases spread over the 20 ms period (4 ms apart), not all devices at the same instant.
    phases = sorted(subscriber.snapshot("telemetry", d)[0].body["ts"] % 20 for d in DEVICES)
    gaps = [b - a for a, b in pairwise([*phases, phases[0] + 20])]
    assert all(3 <= gap <= 5 for gap in gaps), phases
    await wait_for(lambda: len(subscriber.snapshot("status")) >= 10, 10, "status changes")
    for device_id in DEVICES:
        states = [m.body["state"] for m in subscriber.snapshot("status", device_id)]
        assert states == ["online", "offline"], device_id
    retained = await retained_statuses(broker_port)
    assert set(retained) == set(DEVICES)
    for status in retained.values():
        assert status.retained
        StatusPayload.model_validate(status.body)
        assert status.body["state"] == "offline"
        assert "ts" in status.body  # published by the device, not its last will


async def test_a_dropout_triggers_the_last_will_then_the_device_comes_back(
    broker_port: int, subscriber: Subscriber
) -> None:
    config = SimulatorConfig(port=broker_port, rate_hz=20.0, anomaly_probability=0.0)
    runner = SimulatorRunner(config)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(lambda: runner.stats.connected == 5, 10, "all devices connected")
        await wait_for(
            lambda: len(subscriber.snapshot("telemetry", "press-01")) >= 5, 10, "press readings"
        )
        retained = await retained_statuses(broker_port)
        assert {d: (m.body["state"], m.retained) for d, m in retained.items()} == {
            d: ("online", True) for d in DEVICES
        }

        runner.devices["press-01"].inject("dropout", runner.now_ms(), duration_ms=1500)
        assert not runner.is_connected("press-01")
        await wait_for(
            lambda: any(
                m.body == {"state": "offline"} for m in subscriber.snapshot("status", "press-01")
            ),
            10,
            "the broker to publish press-01's last will",
        )
        silent_from = len(subscriber.snapshot("telemetry", "press-01"))
        await wait_for(lambda: runner.is_connected("press-01"), 10, "press-01 to reconnect")
        await wait_for(
            lambda: len(subscriber.snapshot("telemetry", "press-01")) >= silent_from + 5,
            10,
            "press-01 to publish again",
        )
        states = [m.body for m in subscriber.snapshot("status", "press-01")]
        assert [s["state"] for s in states] == ["online", "offline", "online"]
        assert "ts" not in states[1]  # the will, not a status the device sent
        # Silent, not lossy: no gap. (QoS 1 is at-least-once: a reading in flight when the link
        # dropped is sent again after the reconnect, so a repeat is allowed.)
        seqs = [r.body["seq"] for r in subscriber.snapshot("telemetry", "press-01")]
        assert sorted(set(seqs)) == list(range(max(seqs) + 1))
        assert runner.stats.connection_losses == 1
        assert runner.stats.anomalies == 1
        # the other devices did not notice
        for device_id in DEVICES:
            if device_id != "press-01":
                assert [m.body["state"] for m in subscriber.snapshot("status", device_id)] == [
                    "online"
                ]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


class BrokerOutage:
    """A TCP relay in front of the broker that can vanish and come back on the same port.

    amqtt's own shutdown can hang while clients keep publishing, so the outage is made here:
    stopping resets every relayed connection (as a crashed broker host would) and closes the
    listening socket, so new connections are refused until `start()`.
    """

    def __init__(self, broker_port: int) -> None:
        self.port = free_port()
        self._broker_port = broker_port
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for transport in self._transports:
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._broker_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._transports.difference_update(pair)
            for transport in pair:
                if isinstance(transport, asyncio.WriteTransport):
                    transport.abort()
            self._relays.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()  # one side gone: the connection is over for both


async def test_devices_connect_once_the_broker_appears_and_return_after_an_outage(
    broker_port: int,
) -> None:
    outage = BrokerOutage(broker_port)
    config = SimulatorConfig(
        port=outage.port,
        types=("conveyor", "air_compressor"),
        count_per_type=2,
        rate_hz=20.0,
        anomaly_probability=0.0,
        reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )
    stats = SimulatorStats()
    stop = asyncio.Event()
    task = asyncio.create_task(run_simulators(config, stop, stats))
    try:
        await wait_for(lambda: stats.connect_failures >= 8, 10, "connection attempts to fail")
        assert stats.connected == 0
        assert not task.done()
        await outage.start()
        await wait_for(lambda: stats.connected == 4, 15, "devices to connect")
        await wait_for(lambda: stats.acked >= 20, 10, "readings to flow")

        await outage.stop()
        await wait_for(lambda: stats.connected == 0, 15, "devices to notice the broker is gone")
        assert stats.connection_losses == 4
        failures = stats.connect_failures
        await wait_for(lambda: stats.connect_failures >= failures + 4, 10, "refused reconnects")
        await outage.start()
        await wait_for(lambda: stats.connected == 4, 15, "devices to reconnect")
        acked = stats.acked
        await wait_for(lambda: stats.acked >= acked + 20, 10, "readings to flow again")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await outage.stop()
    assert stats.connects == 8
    assert stats.connected == 0
