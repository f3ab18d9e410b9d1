"""A configured connector device -> the metadata document the hub keeps for it
(docs/device-metadata.md): its display name and place, and per value its display name, unit,
ranges and description, as EDGE_CONNECTORS_FILE gives them, over what the server itself says
(OPC UA EngineeringUnits and EURange). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from edge_gateway.connectors.config import ModbusDevice, OpcUaDevice
from protocol.device_metadata import MetricMetadata

Discovered = Mapping[str, Mapping[str, object]]  # metric -> fields the server gave


def device_document(
    device: ModbusDevice | OpcUaDevice, discovered: Discovered | None = None
) -> dict[str, object]:
    """Every configured value is listed (an empty entry when nothing is set), so a report made
    after an edit of the file replaces what the previous one said. The file wins over
    `discovered`, field by field."""
    found = discovered or {}
    points = device.registers if isinstance(device, ModbusDevice) else device.nodes
    metrics = {p.metric: {**found.get(p.metric, {}), **p.metadata()} for p in points}
    return {**device.place(), "metrics": metrics}


def discovered_fields(unit: str | None, low: float | None, high: float | None) -> dict[str, object]:
    """A server's unit and engineering range of a value as metadata fields; one the wire model
    refuses (a unit over 32 characters, low > high, NaN) is left out."""
    out: dict[str, object] = {}
    candidates = (
        ("unit", unit or None),
        ("engineering", None if low is None or high is None else [low, high]),
    )
    for key, value in candidates:
        if value is None:
            continue
        try:
            MetricMetadata.model_validate({key: value})
        except ValidationError:
            continue
        out[key] = value
    return out
