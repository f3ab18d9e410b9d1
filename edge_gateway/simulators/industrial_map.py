"""Where the simulated devices' metrics sit on the simulated OPC UA and Modbus servers, and the
EDGE_CONNECTORS_FILE that reads them back. Pure: the servers (opcua_server.py, modbus_server.py)
and the file's reader (edge_gateway.connectors.config) share this one layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edge_gateway.simulators.catalog import METRICS

Protocol = Literal["opcua", "modbus"]
OPCUA_NAMESPACE = "urn:iot-monitoring:simulators"
OPCUA_NAMESPACE_INDEX = 2  # the first namespace a server registers after its own two


@dataclass(frozen=True, slots=True)
class ModbusSlot:
    """One metric on the simulated Modbus server: gauges as float32 holding registers,
    counters as uint32 holding registers, flags as coils."""

    metric: str
    table: Literal["holding", "coil"]
    address: int
    type: Literal["float32", "uint32"] | None


def modbus_slots(device_type: str) -> list[ModbusSlot]:
    slots, register, coil = [], 0, 0
    for spec in METRICS[device_type]:
        if spec.kind == "flag":
            slots.append(ModbusSlot(spec.name, "coil", coil, None))
            coil += 1
        else:
            kind: Literal["float32", "uint32"] = "uint32" if spec.kind == "counter" else "float32"
            slots.append(ModbusSlot(spec.name, "holding", register, kind))
            register += 2
    return slots


def opcua_node_id(device_id: str, metric: str) -> str:
    return f"ns={OPCUA_NAMESPACE_INDEX};s={device_id}.{metric}"


def connectors_file(
    protocol: Protocol, host: str, port: int, devices: list[tuple[str, str]], rate_hz: float
) -> dict[str, Any]:
    """The connectors file for `devices` [(device_id, type)] served at host:port."""
    interval_s = round(1.0 / rate_hz, 3)
    if protocol == "modbus":
        return {
            "connectors": [
                {
                    "name": "simulated-modbus",
                    "kind": "modbus",
                    "endpoint": f"tcp://{host}:{port}",
                    "devices": [
                        {
                            "device_id": device_id,
                            "type": device_type,
                            "unit_id": unit_id,
                            "poll_interval_s": interval_s,
                            "registers": [_register(slot) for slot in modbus_slots(device_type)],
                        }
                        for unit_id, (device_id, device_type) in enumerate(devices, start=1)
                    ],
                }
            ]
        }
    return {
        "connectors": [
            {
                "name": "simulated-opcua",
                "kind": "opcua",
                "endpoint": f"opc.tcp://{host}:{port}/iot-simulators/",
                "publishing_interval_ms": round(interval_s * 1000 / 2, 1),
                "devices": [
                    {
                        "device_id": device_id,
                        "type": device_type,
                        "nodes": [
                            {
                                "metric": spec.name,
                                "node_id": opcua_node_id(device_id, spec.name),
                                "sampling_interval_ms": round(interval_s * 1000 / 2, 1),
                            }
                            for spec in METRICS[device_type]
                        ],
                    }
                    for device_id, device_type in devices
                ],
            }
        ]
    }


def _register(slot: ModbusSlot) -> dict[str, Any]:
    out: dict[str, Any] = {"metric": slot.metric, "table": slot.table, "address": slot.address}
    if slot.type is not None:
        out["type"] = slot.type
    return out
