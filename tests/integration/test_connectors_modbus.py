"""The Modbus TCP poller against pymodbus's own server, in-process: values decoded and grouped
into one reading per poll, an exception response and a NaN register counted and skipped while
the other values still arrive, and a reconnect after the server comes back."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

from edge_gateway.connectors.config import ModbusConnector, ModbusValue
from edge_gateway.connectors.modbus import ModbusPoller
from edge_gateway.connectors.modbus_codec import encode_registers
from edge_gateway.connectors.sink import ReadingSink
from edge_gateway.intake import Inbound
from tests.support.process import free_port
from tests.support.waiting import async_wait_until

HOLDING, COILS = 3, 1


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Inbound] = []

    def put_nowait(self, message: Inbound) -> None:
        self.messages.append(message)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.messages]


def make_context() -> ModbusServerContext:
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(0, [0] * 40),  # type: ignore[no-untyped-call]
        co=ModbusSequentialDataBlock(0, [False] * 16),  # type: ignore[no-untyped-call]
    )
    return ModbusServerContext(devices={3: device}, single=False)  # type: ignore[no-untyped-call]


async def start_server(context: ModbusServerContext, port: int) -> ModbusTcpServer:
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


@pytest.fixture
def port() -> int:
    return free_port()


def connector(port: int, registers: list[dict[str, Any]]) -> ModbusConnector:
    return ModbusConnector.model_validate(
        {
            "name": "plc-1",
            "kind": "modbus",
            "endpoint": f"tcp://127.0.0.1:{port}",
            "timeout_s": 1,
            "reconnect_max_s": 0.5,
            "devices": [
                {
                    "device_id": "press-01",
                    "type": "hydraulic_press",
                    "unit_id": 3,
                    "poll_interval_s": 0.1,
                    "registers": registers,
                }
            ],
        }
    )


def set_float(context: ModbusServerContext, address: int, number: float, **order: str) -> None:
    value = ModbusValue(metric="x", address=address, type="float32", **order)  # type: ignore[arg-type]
    context[3].setValues(HOLDING, address, encode_registers(number, value))


async def test_values_of_one_poll_are_one_reading_and_bad_ones_are_counted(port: int) -> None:
    context = make_context()
    context[3].setValues(HOLDING, 0, [65535 - 41])  # int16 -42
    set_float(context, 2, 61.5, word_order="little")
    set_float(context, 4, math.nan)
    context[3].setValues(HOLDING, 10, [1234])
    context[3].setValues(COILS, 1, [True])
    server = await start_server(context, port)
    config = connector(
        port,
        [
            {"metric": "temp_c", "address": 0, "type": "int16", "scale": 0.5, "offset": 1},
            {"metric": "pressure_bar", "address": 2, "type": "float32", "word_order": "little"},
            {"metric": "broken_sensor", "address": 4, "type": "float32"},
            {"metric": "count", "address": 10, "type": "uint16"},
            {"metric": "running", "table": "coil", "address": 1},
            # Beyond the 40 holding registers: the device answers with exception 2.
            {"metric": "missing", "address": 100},
        ],
    )
    inbox = Inbox()
    poller = ModbusPoller(config, ReadingSink(inbox, "site-a"))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:

        async def two_polls() -> bool:
            return len(inbox.messages) >= 2

        await async_wait_until(two_polls, 10, "two polls")
        first = inbox.messages[0]
        assert first.topic == "plant/site-a/press-01/telemetry"
        body = json.loads(first.payload)
        assert body["type"] == "hydraulic_press"
        assert body["metrics"] == {
            "temp_c": -42 * 0.5 + 1,
            "pressure_bar": 61.5,
            "count": 1234.0,
            "running": True,
        }
        health = poller.health
        assert health.connected
        assert health.errors["not_finite"] >= 2
        assert health.errors["modbus_exception"] >= 2
        assert "exception code 2" in (health.last_error or "") or "NaN" in (health.last_error or "")

        # The server goes away and comes back: the poller reconnects and values resume.
        await server.shutdown()  # type: ignore[no-untyped-call]

        async def disconnected() -> bool:
            return not poller.health.connected

        await async_wait_until(disconnected, 10, "the poller to see the server gone")
        seen = len(inbox.messages)
        server = await start_server(context, port)

        async def resumed() -> bool:
            return poller.health.connected and len(inbox.messages) > seen + 1

        await async_wait_until(resumed, 15, "values after the server restarted")
        lost = health.errors["connection_lost"] + health.errors["connect_failed"]
        assert lost + health.errors["timeout"] >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.shutdown()  # type: ignore[no-untyped-call]
    assert not poller.health.connected


async def test_a_device_that_never_answers_is_counted_as_timeouts(port: int) -> None:
    """A TCP peer that takes requests and never answers (a wrong unit behind a gateway, a hung
    device): timeouts counted by reason, no reading, the poller keeps trying."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", port)
    inbox = Inbox()
    poller = ModbusPoller(
        connector(port, [{"metric": "temp_c", "address": 0}]), ReadingSink(inbox, "site-a")
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:

        async def two_timeouts() -> bool:
            return poller.health.errors["timeout"] >= 2

        await async_wait_until(two_timeouts, 20, "two timeouts")
        assert not inbox.messages
        assert (poller.health.last_error or "").startswith("timeout: press-01 holding 0+1")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        server.close()
        await server.wait_closed()
