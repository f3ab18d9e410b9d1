"""OPC UA data changes -> reading values: what is kept, what is skipped and why, and how values
of one notification are grouped into readings. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocol.models import MAX_METRIC_MAGNITUDE


@dataclass(frozen=True, slots=True)
class NodeTarget:
    """Where a monitored item's values go."""

    device_id: str
    device_type: str | None
    metric: str


def reading_value(value: object) -> float | bool | None:
    """A number or boolean as a reading value; None for anything else (strings, arrays,
    structures) and for NaN, infinity and magnitudes the contract refuses."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        number = float(value)
        if math.isfinite(number) and abs(number) <= MAX_METRIC_MAGNITUDE:
            return number
    return None


def timestamp_ms(source: datetime | None, server: datetime | None, now_ms: int) -> int:
    """The source timestamp (when the value was sampled), else the server's, else now. asyncua
    gives naive datetimes in UTC."""
    for ts in (source, server):
        if ts is not None:
            aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            return int(aware.timestamp() * 1000)
    return now_ms


@dataclass(slots=True)
class Batch:
    """Values of one notification, one reading per device and sample time."""

    readings: dict[tuple[str, int], dict[str, float | bool]] = field(default_factory=dict)
    types: dict[str, str | None] = field(default_factory=dict)

    def add(self, target: NodeTarget, ts_ms: int, value: float | bool) -> None:
        self.readings.setdefault((target.device_id, ts_ms), {})[target.metric] = value
        self.types[target.device_id] = target.device_type
