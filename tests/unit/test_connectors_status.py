"""Connector health in the status JSON, /metrics, `iot-edge status` and the heartbeat record."""

from __future__ import annotations

import dataclasses
import json

from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.stats import encode_edge_metrics, prometheus_text
from edge_gateway.status_view import render_status
from iot_common.prometheus import parse
from protocol import EdgeMetrics
from tests.unit.test_stats import make_status


def with_connector() -> dict[str, object]:
    health = ConnectorHealth("press-plc", "modbus", "tcp://10.0.0.5:502")
    health.snapshot(0.0)
    health.values_total = 120
    health.readings_total = 20
    health.count("timeout", "press-01 holding 0+10: no answer")
    health.count("timeout")
    return health.snapshot(10.0)


def test_status_json_and_view_show_the_connector() -> None:
    status = dataclasses.replace(make_status(), connectors=(with_connector(),))
    body = status.to_json()
    (connector,) = body["connectors"]
    assert connector["values_rate"] == 12.0
    assert connector["errors"] == {"timeout": 2}
    text = render_status(json.loads(json.dumps(body)))
    line = next(x for x in text.splitlines() if x.startswith("connector press-plc"))
    assert "modbus tcp://10.0.0.5:502, NOT CONNECTED, 12.0 values/s, 120 values" in line
    assert "problems: timeout 2" in line


def test_metrics_by_connector_and_reason() -> None:
    status = dataclasses.replace(make_status(), connectors=(with_connector(),))
    samples = parse(prometheus_text(status))
    labels = '{connector="press-plc",kind="modbus"}'
    assert samples["edge_connector_connected" + labels] == 0
    assert samples["edge_connector_values_total" + labels] == 120
    assert samples['edge_connector_errors_total{connector="press-plc",reason="timeout"}'] == 2


def test_the_heartbeat_carries_connectors_only_when_there_are_some() -> None:
    plain = make_status().to_edge_metrics()
    assert plain.connectors is None
    assert b"connectors" not in encode_edge_metrics(plain)
    status = dataclasses.replace(make_status(), connectors=(with_connector(),))
    record = encode_edge_metrics(status.to_edge_metrics())
    decoded = EdgeMetrics.model_validate_json(record)
    assert decoded.connectors is not None
    assert decoded.connectors[0].errors == {"timeout": 2}
    assert decoded.connectors[0].last_error == "timeout: press-01 holding 0+10: no answer"
