"""Device metadata from the edge: the `iot.device-metadata` message (protocol.device_metadata)
and the hub agent that stores it as the edge layer (hub.agents.metadata); bad records go to the
dead-letter topic with a reason, the good ones of the same batch are still stored."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from edge_gateway.device_metadata import metadata_record
from hub.agents.metadata import MetadataCounters, handle_device_metadata
from hub.agents.retry import Retrier
from hub.storage.memory_metadata import MemoryMetadataStore
from protocol.device_metadata import DeviceMetadataReport, MetricMetadata, device_metadata_record
from protocol.topics import KafkaTopics


async def no_sleep(_: float) -> None:
    return None


class FakeDlq:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    async def send(self, value: bytes, *, error: str) -> None:
        self.sent.append((value, error))


def report(
    device_id: str = "press-01", ts: int | None = None, **kw: object
) -> DeviceMetadataReport:
    return DeviceMetadataReport.model_validate(
        {
            "site": "plant-a",
            "device_id": device_id,
            "gateway_id": "gw-1",
            "ts": ts if ts is not None else int(time.time() * 1000),
            "source": "sparkplug",
            "area": "Forming",
            "metrics": {
                "motor_1_temperature": {
                    "display_name": "Motor 1 temperature",
                    "unit": "°C",
                    "engineering": [-20, 150],
                    "source_name": "Motor 1/Temperature",
                }
            },
            **kw,
        }
    )


def test_the_record_is_keyed_by_device_and_topics_follow_the_prefix() -> None:
    key, value = device_metadata_record(report())
    assert key == b"press-01"
    assert json.loads(value)["metrics"]["motor_1_temperature"]["unit"] == "°C"
    assert KafkaTopics("dev.").device_metadata == "dev.iot.device-metadata"


def test_the_message_refuses_bad_ranges_and_names() -> None:
    with pytest.raises(ValidationError, match="normal"):
        MetricMetadata.model_validate({"normal": [10, 1]})
    with pytest.raises(ValidationError, match="metrics"):
        report(metrics={"Motor 1": {}})


async def test_reports_are_stored_as_the_edge_layer_and_bad_ones_dead_lettered() -> None:
    store, dlq, counters = MemoryMetadataStore(), FakeDlq(), MetadataCounters()
    now = int(time.time() * 1000)
    older = device_metadata_record(report(ts=now - 1000, area="Old area"))[1]
    newer = device_metadata_record(report(ts=now))[1]
    other = device_metadata_record(report("press-02", ts=now, line="Line 9"))[1]
    bad_json = b"{not json"
    bad_range = json.dumps(
        {**json.loads(newer), "device_id": "press-03", "metrics": {"t": {"normal": [5, 1]}}}
    ).encode()
    await handle_device_metadata(
        [older, bad_json, newer, other, bad_range],
        store=store,
        dlq=dlq,
        counters=counters,
        retrier=Retrier(sleep=no_sleep),
    )
    stored = {e.key: e for e in await store.entries("device")}
    assert sorted(stored) == ["press-01", "press-02"]
    first = stored["press-01"]
    assert (first.source, first.updated_by, first.document["area"]) == (
        "edge",
        "sparkplug@gw-1",
        "Forming",
    )
    assert first.document["metrics"]["motor_1_temperature"]["source_name"] == "Motor 1/Temperature"
    assert stored["press-02"].document["line"] == "Line 9"
    assert [raw for raw, _ in dlq.sent] == [bad_json, bad_range]
    assert all(error for _, error in dlq.sent)
    assert (counters.reports_total, counters.stored_total, counters.dead_lettered_total) == (
        3,
        2,
        2,
    )


def test_the_edge_helper_builds_a_buffer_record_under_the_prefix() -> None:
    record = metadata_record(
        site="plant-a",
        device_id="node-1.press",
        gateway_id="gw-1",
        ts_ms=1_764_268_800_000,
        metadata={"area": "Forming", "metrics": {"ram_bar": {"unit": "bar"}}},
        source="sparkplug",
        device_type="hydraulic_press",
        kafka_topics=KafkaTopics("dev."),
    )
    assert (record.topic, record.key) == ("dev.iot.device-metadata", b"node-1.press")
    decoded = DeviceMetadataReport.model_validate_json(record.value)
    assert (decoded.type, decoded.area, decoded.metrics["ram_bar"].unit) == (
        "hydraulic_press",
        "Forming",
        "bar",
    )
    with pytest.raises(ValidationError, match="engineering"):
        metadata_record(
            site="plant-a",
            device_id="d",
            gateway_id="gw-1",
            ts_ms=0,
            metadata={"metrics": {"t": {"engineering": [9, 1]}}},
            source="modbus",
        )
