"""Device metadata at the edge, for the connectors (Sparkplug births, OPC UA and Modbus
configuration) to report what they know of a device: `metadata_record` builds the buffer record
for `iot.device-metadata` (protocol.device_metadata), which the caller appends to the gateway's
buffer like any other record, so it is kept across outages and forwarded in order with the
device's telemetry. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from edge_gateway.buffer import BufferRecord
from protocol.device_metadata import DeviceMetadataReport, device_metadata_record
from protocol.topics import KafkaTopics

__all__ = ["metadata_record"]


def metadata_record(
    *,
    site: str,
    device_id: str,
    gateway_id: str,
    ts_ms: int,
    metadata: dict[str, Any],
    source: str,
    device_type: str | None = None,
    kafka_topics: KafkaTopics | None = None,
) -> BufferRecord:
    """The record of one device's metadata (`metadata`: display_name, area, line, machine and
    `metrics`, as in docs/device-metadata.md); pydantic's ValidationError names a bad field."""
    report = DeviceMetadataReport.model_validate(
        {
            **metadata,
            "site": site,
            "device_id": device_id,
            "gateway_id": gateway_id,
            "ts": ts_ms,
            "source": source,
            "type": device_type,
        }
    )
    key, value = device_metadata_record(report)
    topic = (kafka_topics or KafkaTopics()).device_metadata
    return BufferRecord(topic=topic, key=key, value=value, created_ms=ts_ms)
