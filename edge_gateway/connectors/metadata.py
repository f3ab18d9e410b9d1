"""A configured connector device -> the metadata document the hub keeps for it
(docs/device-metadata.md): its display name and place, and per value its display name, unit,
ranges and description, as EDGE_CONNECTORS_FILE gives them. Pure."""

from __future__ import annotations

from edge_gateway.connectors.config import ModbusDevice, OpcUaDevice


def device_document(device: ModbusDevice | OpcUaDevice) -> dict[str, object]:
    """Every configured value is listed (an empty entry when nothing is set), so a report made
    after an edit of the file replaces what the previous one said."""
    points = device.registers if isinstance(device, ModbusDevice) else device.nodes
    return {**device.place(), "metrics": {p.metric: p.metadata() for p in points}}
