"""MQTT refusals (connect, publish, subscribe) in the status JSON, /metrics and the status view."""

from __future__ import annotations

from edge_gateway.stats import GatewayCounters, prometheus_text
from edge_gateway.status_view import render_status
from tests.unit.test_status_failures import samples, status


def test_no_refusals_no_row() -> None:
    body = status(GatewayCounters()).to_json()
    assert body["counters"]["mqtt_publish_refused_total"] == 0
    assert "mqtt refused" not in render_status(body)
    metrics = samples(prometheus_text(status(GatewayCounters())))
    assert metrics['edge_mqtt_refused_total{action="publish"}'] == "0"


def test_refusals_are_shown_everywhere() -> None:
    counters = GatewayCounters(
        mqtt_connect_refused_total=2,
        mqtt_publish_refused_total=1500,
        mqtt_subscribe_refused_total=1,
    )
    snapshot = status(counters)
    body = snapshot.to_json()
    assert body["counters"]["mqtt_connect_refused_total"] == 2
    assert body["counters"]["mqtt_publish_refused_total"] == 1500
    assert body["counters"]["mqtt_subscribe_refused_total"] == 1
    metrics = samples(prometheus_text(snapshot))
    assert metrics['edge_mqtt_refused_total{action="connect"}'] == "2"
    assert metrics['edge_mqtt_refused_total{action="publish"}'] == "1500"
    assert metrics['edge_mqtt_refused_total{action="subscribe"}'] == "1"
    (row,) = [line for line in render_status(body).splitlines() if line.startswith("mqtt refused")]
    assert row.endswith("connect 2, publish 1,500, subscribe 1 (see log)")
