"""The value of `iot.device-metadata` (keyed by device_id): what a gateway knows of a device's
metrics and place, from a Sparkplug birth certificate or a connector's configuration. The hub
stores it as the device's *edge* layer of metadata (docs/device-metadata.md): above the packaged
seed, below an admin's edits. Pure data: no I/O; `device_metadata_record` builds the record."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, model_validator

from protocol.codec import encode
from protocol.models import SCHEMA_VERSION, DeviceType, EpochMs, Identifier, MetricName, _Wire

__all__ = [
    "DEVICE_METADATA_MAX_METRICS",
    "DeviceMetadataReport",
    "MetricMetadata",
    "device_metadata_record",
]

DEVICE_METADATA_MAX_METRICS: Final = 500
Name = Annotated[str, StringConstraints(max_length=120, pattern=r"^[^\x00-\x1f]*$")]
Range = Annotated[
    list[Annotated[float, Field(ge=-1e15, le=1e15)]], Field(min_length=2, max_length=2)
]


class MetricMetadata(_Wire):
    display_name: Name | None = None
    unit: Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f]*$")] | None = None
    normal: Range | None = Field(default=None, description="[min, max] a healthy device stays in")
    engineering: Range | None = Field(
        default=None, description="[min, max] the instrument can measure"
    )
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    source_name: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="the metric's name at the source, e.g. 'Motor 1/Temperature'"
    )

    @model_validator(mode="after")
    def _ranges(self) -> MetricMetadata:
        for name in ("normal", "engineering"):
            value = getattr(self, name)
            if value is not None and value[0] > value[1]:
                raise ValueError(f"{name}: min {value[0]} is greater than max {value[1]}")
        return self


class DeviceMetadataReport(_Wire):
    """Value of `iot.device-metadata` version 1, keyed by device_id."""

    v: Literal[1] = SCHEMA_VERSION
    site: Identifier
    device_id: Identifier
    gateway_id: Identifier
    ts: EpochMs
    type: DeviceType | None = None
    source: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        default="edge", description="what filled it: sparkplug, opcua, modbus, config..."
    )
    display_name: Name | None = None
    area: Name | None = None
    line: Name | None = None
    machine: Name | None = None
    metrics: dict[MetricName, MetricMetadata] = Field(
        default_factory=dict, max_length=DEVICE_METADATA_MAX_METRICS
    )

    def document(self) -> dict[str, object]:
        """The metadata document (hub.metadata.model) this report carries."""
        out: dict[str, object] = {
            k: v
            for k, v in (
                ("display_name", self.display_name),
                ("area", self.area),
                ("line", self.line),
                ("machine", self.machine),
            )
            if v is not None
        }
        out["metrics"] = {name: m.model_dump(exclude_none=True) for name, m in self.metrics.items()}
        return out


def device_metadata_record(report: DeviceMetadataReport) -> tuple[bytes, bytes]:
    """(key, value) of the Kafka record: keyed by device_id, like telemetry and status."""
    return report.device_id.encode(), encode(report)
