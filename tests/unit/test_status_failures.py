"""Buffer errors and failed background tasks in the status JSON, /metrics and `iot-edge status`."""

from __future__ import annotations

from edge_gateway.buffer import BufferStats
from edge_gateway.stats import GatewayCounters, GatewayStatus, prometheus_text
from edge_gateway.status_view import render_status, summary_line


def status(counters: GatewayCounters, failed_tasks: tuple[str, ...] = ()) -> GatewayStatus:
    return GatewayStatus(
        gateway_id="gw-1",
        site="s1",
        now_ms=10_000,
        uptime_s=5.0,
        mqtt_mode="external",
        mqtt_address="127.0.0.1:1883",
        mqtt_connected=True,
        kafka_bootstrap="k:9092",
        kafka_connected=True,
        kafka_last_error=None,
        buffer=BufferStats(
            depth=0,
            bytes=0,
            in_flight=0,
            oldest_created_ms=None,
            appended_total=5,
            acked_total=5,
            dropped_total=0,
            max_bytes=4096,
        ),
        counters=counters,
        failed_tasks=failed_tasks,
    )


def samples(text: str) -> dict[str, str]:
    return {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if not line.startswith("#")
    }


def test_healthy_status_shows_no_failures() -> None:
    body = status(GatewayCounters()).to_json()
    assert body["failed_tasks"] == []
    assert body["buffer"]["last_error"] is None
    assert body["counters"]["forward_buffer_errors_total"] == 0
    metrics = samples(prometheus_text(status(GatewayCounters())))
    assert metrics["edge_failed_tasks"] == "0"
    assert metrics['edge_buffer_errors_total{side="forwarder"}'] == "0"
    text = render_status(body)
    assert "FAILED" not in text
    assert "buffer errors" not in text
    assert "FAILED" not in summary_line(body)


def test_buffer_errors_and_failed_tasks_are_shown_everywhere() -> None:
    counters = GatewayCounters(
        buffer_errors_total=1,
        forward_buffer_errors_total=3,
        buffer_last_error="ack: OperationalError: database is locked",
    )
    snapshot = status(counters, failed_tasks=("forwarder",))
    body = snapshot.to_json()
    assert body["failed_tasks"] == ["forwarder"]
    assert body["buffer"]["last_error"] == "ack: OperationalError: database is locked"
    assert body["counters"]["forward_buffer_errors_total"] == 3
    assert body["counters"]["buffer_errors_total"] == 1
    metrics = samples(prometheus_text(snapshot))
    assert metrics['edge_buffer_errors_total{side="bridge"}'] == "1"
    assert metrics['edge_buffer_errors_total{side="forwarder"}'] == "3"
    assert metrics["edge_failed_tasks"] == "1"
    text = render_status(body)
    assert "1 on append, 3 on forward (last: ack: OperationalError: database is locked)" in text
    (row,) = [line for line in text.splitlines() if line.startswith("FAILED tasks")]
    assert row.split(None, 2)[2].startswith("forwarder (not ready")
    assert summary_line(body).endswith("| FAILED forwarder")


def test_status_of_an_older_gateway_still_renders() -> None:
    body = status(GatewayCounters()).to_json()
    del body["failed_tasks"], body["buffer"]["last_error"]
    del body["counters"]["forward_buffer_errors_total"]
    assert "gw-1" in render_status(body)
    assert "kafka up" in summary_line(body)
