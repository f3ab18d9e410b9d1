"""Connector values into readings: OPC UA values kept or skipped, grouping per device and sample
time, source timestamps, the JSON message handed to the intake, health and backoff."""

from __future__ import annotations

import json
import queue
from datetime import UTC, datetime

import pytest

from edge_gateway.connectors.config import ModbusDevice, OpcUaDevice
from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.metadata import device_document, discovered_fields
from edge_gateway.connectors.opcua_values import Batch, NodeTarget, reading_value, timestamp_ms
from edge_gateway.connectors.readings import telemetry_message
from edge_gateway.connectors.sink import ReadingSink
from edge_gateway.intake import Inbound
from edge_gateway.routing import MessageRouter
from protocol.device_metadata import DeviceMetadataReport
from protocol.topics import KafkaTopics


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (3, 3.0),
        (2.5, 2.5),
        (float("nan"), None),
        (float("inf"), None),
        (1e16, None),
        ("text", None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_reading_values(value: object, expected: float | bool | None) -> None:
    assert reading_value(value) == expected


def test_source_timestamp_first_then_server_then_now() -> None:
    source = datetime(2026, 1, 2, 3, 4, 5, 678000)  # asyncua: naive UTC
    server = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    expected = int(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp() * 1000)
    assert timestamp_ms(source, server, 1) == expected
    assert timestamp_ms(None, server, 1) == int(server.timestamp() * 1000)
    assert timestamp_ms(None, None, 123) == 123


def test_a_batch_groups_by_device_and_sample_time() -> None:
    batch = Batch()
    a, b = NodeTarget("press-01", "press", "p"), NodeTarget("press-01", "press", "t")
    other = NodeTarget("oven-01", None, "t")
    batch.add(a, 1000, 1.0)
    batch.add(b, 1000, 2.0)
    batch.add(other, 1000, 3.0)
    batch.add(a, 2000, 4.0)
    assert batch.readings == {
        ("press-01", 1000): {"p": 1.0, "t": 2.0},
        ("oven-01", 1000): {"t": 3.0},
        ("press-01", 2000): {"p": 4.0},
    }
    assert batch.types == {"press-01": "press", "oven-01": None}


def test_the_message_is_a_valid_reading_for_the_router() -> None:
    topic, payload = telemetry_message("s1", "press-01", "press", {"p": 1.5, "on": True}, 1_000)
    router = MessageRouter("gw-1", max_past_ms=10**15, max_future_ms=10**9)
    routed = router.route(topic, payload, 2_000)
    assert routed.kind == "reading"
    assert routed.device_id == "press-01"
    assert json.loads(payload) == {"ts": 1000, "metrics": {"p": 1.5, "on": True}, "type": "press"}


class FullInbox:
    def put_nowait(self, message: Inbound) -> None:
        raise queue.Full


class ListInbox:
    def __init__(self) -> None:
        self.messages: list[Inbound] = []

    def put_nowait(self, message: Inbound) -> None:
        self.messages.append(message)


def test_the_sink_counts_values_and_a_full_intake() -> None:
    health = ConnectorHealth("c", "modbus", "tcp://h")
    inbox = ListInbox()
    ReadingSink(inbox, "s1").emit(health, "d1", None, {"a": 1.0, "b": 2.0}, 5)
    ReadingSink(inbox, "s1").emit(health, "d1", None, {}, 5)  # nothing to send
    assert len(inbox.messages) == 1
    assert (health.values_total, health.readings_total) == (2, 1)
    ReadingSink(FullInbox(), "s1").emit(health, "d1", None, {"a": 1.0}, 5)
    assert health.errors["intake_full"] == 1
    assert health.values_total == 2


def test_the_sink_reports_a_devices_configured_metadata_as_one_record() -> None:
    device = ModbusDevice.model_validate(
        {
            "device_id": "press-01",
            "type": "hydraulic_press",
            "display_name": "Press 1",
            "area": "Forming",
            "line": "Line 2",
            "registers": [
                {
                    "metric": "ram_pressure_bar",
                    "address": 0,
                    "unit": "bar",
                    "display_name": "Ram pressure",
                    "normal": [0, 250],
                    "engineering": [0, 400],
                    "description": "main cylinder",
                },
                {"metric": "cycles", "address": 1},
            ],
        }
    )
    health = ConnectorHealth("plc", "modbus", "tcp://h")
    inbox = ListInbox()
    sink = ReadingSink(inbox, "s1", gateway_id="gw-9", kafka_topics=KafkaTopics("dev."))
    assert sink.report_metadata(health, device, "modbus")
    (message,) = inbox.messages
    assert message.metadata is not None
    assert (message.metadata.topic, message.metadata.key) == (
        "dev.iot.device-metadata",
        b"press-01",
    )
    report = DeviceMetadataReport.model_validate_json(message.metadata.value)
    assert (report.site, report.gateway_id, report.source, report.type) == (
        "s1",
        "gw-9",
        "modbus",
        "hydraulic_press",
    )
    assert report.document() == {
        "display_name": "Press 1",
        "area": "Forming",
        "line": "Line 2",
        "metrics": {
            "ram_pressure_bar": {
                "display_name": "Ram pressure",
                "unit": "bar",
                "normal": [0.0, 250.0],
                "engineering": [0.0, 400.0],
                "description": "main cylinder",
            },
            "cycles": {},  # listed: a later report without metadata replaces the earlier one
        },
    }
    assert not ReadingSink(FullInbox(), "s1").report_metadata(health, device, "modbus")
    assert health.errors["intake_full"] == 1


def test_an_opcua_devices_metadata_lists_its_nodes() -> None:
    device = OpcUaDevice.model_validate(
        {
            "device_id": "cnc-01",
            "machine": "M-7",
            "nodes": [{"metric": "spindle_rpm", "node_id": "ns=2;i=2", "unit": "rpm"}],
        }
    )
    assert device_document(device) == {
        "machine": "M-7",
        "metrics": {"spindle_rpm": {"unit": "rpm"}},
    }


def test_what_the_server_says_fills_what_the_file_leaves_unset() -> None:
    device = OpcUaDevice.model_validate(
        {
            "device_id": "cnc-01",
            "nodes": [
                {"metric": "a", "node_id": "ns=2;i=1", "unit": "rpm"},
                {"metric": "b", "node_id": "ns=2;i=2"},
            ],
        }
    )
    found: dict[str, dict[str, object]] = {
        "a": {"unit": "1/min", "engineering": [0, 9000]},
        "b": {"unit": "mm"},
    }
    assert device_document(device, found)["metrics"] == {
        "a": {"unit": "rpm", "engineering": [0, 9000]},
        "b": {"unit": "mm"},
    }


@pytest.mark.parametrize(
    ("unit", "low", "high", "expected"),
    [
        ("bar", 0.0, 400.0, {"unit": "bar", "engineering": [0.0, 400.0]}),
        ("", None, 5.0, {}),  # no unit text, half a range
        ("x" * 33, 5.0, 1.0, {}),  # too long, low > high
        ("V", float("nan"), 1.0, {"unit": "V"}),
        ("A", -1e16, 0.0, {"unit": "A"}),
    ],
)
def test_discovered_fields_keep_only_what_the_model_takes(
    unit: str, low: float | None, high: float | None, expected: dict[str, object]
) -> None:
    assert discovered_fields(unit, low, high) == expected


def test_health_snapshot_rates_and_reasons() -> None:
    health = ConnectorHealth("c", "opcua", "opc.tcp://h")
    health.snapshot(0.0)
    health.values_total = 50
    health.count("bad_node", "d.m: BadNodeIdUnknown")
    snap = health.snapshot(10.0)
    assert snap["values_rate"] == 5.0
    assert snap["errors"] == {"bad_node": 1}
    assert snap["last_error"] == "bad_node: d.m: BadNodeIdUnknown"
