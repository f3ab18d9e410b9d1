"""The simulated fleet served by an OPC UA server (asyncua) or a Modbus TCP server (pymodbus):
each device's machine model steps at `rate_hz` and its values are written where
industrial_map puts them, for the gateway's connectors to read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from edge_gateway.connectors.config import ModbusValue
from edge_gateway.connectors.modbus_codec import encode_registers
from edge_gateway.simulators.device import SimulatedDevice
from edge_gateway.simulators.industrial_map import (
    OPCUA_NAMESPACE,
    Protocol,
    modbus_slots,
)

log = logging.getLogger("edge.simulators.industrial")
_HOLDING, _COILS = 3, 1


class ModbusFleetServer:
    def __init__(self, fleet: list[SimulatedDevice], host: str, port: int) -> None:
        from pymodbus.datastore import (
            ModbusDeviceContext,
            ModbusSequentialDataBlock,
            ModbusServerContext,
        )

        self._fleet = fleet
        self._address = (host, port)
        devices = {
            unit: ModbusDeviceContext(
                hr=ModbusSequentialDataBlock(0, [0] * 64),  # type: ignore[no-untyped-call]
                co=ModbusSequentialDataBlock(0, [False] * 16),  # type: ignore[no-untyped-call]
            )
            for unit in range(1, len(fleet) + 1)
        }
        self._context = ModbusServerContext(devices=devices, single=False)  # type: ignore[no-untyped-call]
        self._slots = {d.device_id: modbus_slots(d.device_type) for d in fleet}
        self._server: Any = None

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer

        self._server = ModbusTcpServer(self._context, address=self._address)
        await self._server.serve_forever(background=True)

    def write(self, unit: int, device: SimulatedDevice, metrics: dict[str, float | bool]) -> None:
        store = self._context[unit]
        for slot in self._slots[device.device_id]:
            value = metrics.get(slot.metric)
            if value is None:
                continue
            if slot.table == "coil":
                store.setValues(_COILS, slot.address, [bool(value)])
            else:
                assert slot.type is not None
                spec = ModbusValue(metric=slot.metric, address=slot.address, type=slot.type)
                raw = max(0.0, float(value)) if slot.type == "uint32" else float(value)
                store.setValues(_HOLDING, slot.address, encode_registers(raw, spec))

    async def step(self, now_ms: int) -> int:
        written = 0
        for unit, device in enumerate(self._fleet, start=1):
            payload = device.next_payload(now_ms)
            if payload is not None:
                self.write(unit, device, payload["metrics"])
                written += 1
        return written

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()


class OpcUaFleetServer:
    def __init__(self, fleet: list[SimulatedDevice], host: str, port: int) -> None:
        self._fleet = fleet
        self.endpoint = f"opc.tcp://{host}:{port}/iot-simulators/"
        self._server: Any = None
        self._nodes: dict[tuple[str, str], Any] = {}

    async def start(self) -> None:
        from asyncua import Server, ua

        server = self._server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("iot-monitoring simulators")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(OPCUA_NAMESPACE)
        for device in self._fleet:
            payload = device.next_payload(int(time.time() * 1000))
            metrics = payload["metrics"] if payload else {}
            obj = await server.nodes.objects.add_object(
                ua.NodeId(device.device_id, ns), ua.QualifiedName(device.device_id, ns)
            )
            for name, value in metrics.items():
                initial = (
                    ua.Variant(value, ua.VariantType.Boolean)
                    if isinstance(value, bool)
                    else ua.Variant(float(value), ua.VariantType.Double)
                )
                self._nodes[(device.device_id, name)] = await obj.add_variable(
                    ua.NodeId(f"{device.device_id}.{name}", ns), ua.QualifiedName(name, ns), initial
                )
        await server.start()

    async def step(self, now_ms: int) -> int:
        from asyncua import ua

        stamp = datetime.fromtimestamp(now_ms / 1000, UTC)
        written = 0
        for device in self._fleet:
            payload = device.next_payload(now_ms)
            if payload is None:
                continue
            for name, value in payload["metrics"].items():
                node = self._nodes.get((device.device_id, name))
                if node is None:
                    continue
                variant = (
                    ua.Variant(value, ua.VariantType.Boolean)
                    if isinstance(value, bool)
                    else ua.Variant(float(value), ua.VariantType.Double)
                )
                await self._server.write_attribute_value(
                    node.nodeid, ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=stamp)
                )
            written += 1
        return written

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()


async def serve_fleet(
    protocol: Protocol,
    fleet: list[SimulatedDevice],
    host: str,
    port: int,
    rate_hz: float,
    stop: asyncio.Event,
) -> int:
    """Serve until `stop`; the number of device updates written."""
    server: ModbusFleetServer | OpcUaFleetServer = (
        ModbusFleetServer(fleet, host, port)
        if protocol == "modbus"
        else OpcUaFleetServer(fleet, host, port)
    )
    await server.start()
    log.info("simulator_server_listening", extra={"protocol": protocol, "port": port})
    period = 1.0 / rate_hz
    written = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            written += await server.step(time.time_ns() // 1_000_000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, period - (time.monotonic() - started)))
    finally:
        await server.stop()
    return written
