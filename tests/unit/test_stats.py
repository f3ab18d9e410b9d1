from __future__ import annotations

import dataclasses
import random

import pytest

from edge_gateway.buffer import BufferStats
from edge_gateway.runway import RunwayMeter, runway_s
from edge_gateway.stats import GatewayCounters, GatewayStatus, RateMeter, prometheus_text
from edge_gateway.status_view import render_status, summary_line
from iot_common.backoff import Backoff
from iot_common.humanize import human_age, human_bytes
from iot_common.prometheus import parse


def make_status(**counter_values: int) -> GatewayStatus:
    counters = GatewayCounters(**counter_values)  # type: ignore[arg-type]
    buffer = BufferStats(
        depth=3,
        bytes=2048,
        in_flight=1,
        oldest_created_ms=9_000,
        appended_total=10,
        acked_total=7,
        dropped_total=2,
        max_bytes=4096,
    )
    return GatewayStatus(
        gateway_id="gw-1",
        site="s1",
        now_ms=10_000,
        uptime_s=5.0,
        mqtt_mode="embedded",
        mqtt_address="127.0.0.1:1883",
        mqtt_connected=True,
        kafka_bootstrap="k:9092",
        kafka_connected=False,
        kafka_last_error="KafkaConnectionError: refused",
        buffer=buffer,
        counters=counters,
        dead_lettered_by_reason={"invalid_json": 2, "bad_topic": 1},
        seq_gaps_total=4,
        received_rate=12.5,
        forwarded_rate=0.0,
    )


def test_rate_meter_uses_a_sliding_window() -> None:
    meter = RateMeter(window_s=10)
    assert meter.rate(0.0, 0) == 0.0
    assert meter.rate(5.0, 50) == pytest.approx(10.0)
    assert meter.rate(10.0, 100) == pytest.approx(10.0)
    # After a stall the old fast samples age out of the window.
    assert meter.rate(30.0, 100) == pytest.approx(0.0)


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(initial_s=1, max_s=8, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_status_json_and_oldest_age() -> None:
    body = make_status(received_total=9, dead_lettered_total=3).to_json()
    assert body["buffer"]["oldest_age_s"] == 1.0
    assert body["buffer"]["dropped_total"] == 2
    assert body["counters"]["dead_lettered_by_reason"] == {"bad_topic": 1, "invalid_json": 2}
    assert body["kafka"]["connected"] is False


def test_edge_metrics_heartbeat_matches_status() -> None:
    metrics = make_status(received_total=9, forwarded_total=7).to_edge_metrics()
    assert (metrics.buffer_depth, metrics.dropped_total, metrics.forwarded_total) == (3, 2, 7)
    assert metrics.buffer_oldest_age_s == 1.0


def test_prometheus_text_is_well_formed() -> None:
    text = prometheus_text(make_status(received_total=9, forwarded_total=7))
    samples = {
        line.split(" ")[0]: line.split(" ")[1]
        for line in text.splitlines()
        if not line.startswith("#")
    }
    assert samples["edge_received_total"] == "9"
    assert samples["edge_dropped_total"] == "2"
    assert samples["edge_buffer_depth"] == "3"
    assert samples["edge_kafka_connected"] == "0"
    assert samples['edge_dead_lettered_by_reason_total{reason="invalid_json"}'] == "2"
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            assert line.split()[3] in ("counter", "gauge")


def test_human_readable_views() -> None:
    body = make_status(received_total=1234).to_json()
    text = render_status(body)
    assert "DOWN (KafkaConnectionError: refused)" in text
    assert "2.0 KiB of 4.0 KiB (50.0%)" in text
    assert "invalid_json 2" in text
    line = summary_line(body, published=5)
    assert "received 1,234" in line
    assert "kafka DOWN" in line
    assert (human_bytes(512), human_bytes(3 * 1024**3)) == ("512 B", "3.0 GiB")
    assert (human_age(None), human_age(90), human_age(5400)) == ("-", "90.0 s", "90.0 min")


def test_runway_is_free_bytes_over_net_growth() -> None:
    assert runway_s(1000, 10.0) == pytest.approx(100.0)
    assert runway_s(-5, 10.0) == 0.0  # over budget by in-flight bytes: full
    assert runway_s(1000, 0.0) is None
    assert runway_s(1000, -3.0) is None


def test_runway_meter_falls_during_an_outage_and_vanishes_when_forwarding_keeps_up() -> None:
    meter = RunwayMeter(window_s=30, min_span_s=5)
    free = 100_000
    # Kafka away: 1,000 B/s in, nothing out.
    runways = [meter.runway(float(t), 1000 * t, 0, free - 1000 * t) for t in range(0, 41, 10)]
    assert runways[0] is None  # one sample: no rate yet
    finite = [r for r in runways[1:] if r is not None]
    assert len(finite) == 4
    assert finite == sorted(finite, reverse=True)
    assert finite[-1] == pytest.approx((free - 40_000) / 1000)
    # Kafka back: out faster than in (draining), then in step: no runway.
    in_total, out_total = 40_000, 0
    for t in range(50, 131, 10):
        in_total += 10_000
        out_total += 20_000 if out_total < in_total - 10_000 else 10_000
        last = meter.runway(float(t), in_total, out_total, free)
    assert last is None


def test_runway_meter_ignores_batching_noise_and_restarted_totals() -> None:
    meter = RunwayMeter(window_s=30, min_span_s=5, min_growth_share=0.05)
    assert meter.runway(0.0, 0, 0, 1000) is None
    assert meter.runway(0.5, 5_000, 0, 1000) is None  # one batch in half a second: too early
    # 2% net growth is a balanced pipe with a batch in flight.
    assert meter.runway(10.0, 10_000, 9_800, 1000) is None
    # Totals that went down (buffer reopened) restart the window instead of going negative.
    assert meter.runway(20.0, 100, 0, 1000) is None
    assert meter.runway(30.0, 1100, 0, 1000) == pytest.approx(10.0)


def test_runway_shows_in_status_json_metrics_and_views() -> None:
    growing = dataclasses.replace(make_status(), buffer_runway_s=5400.04)
    assert growing.to_json()["buffer"]["runway_s"] == 5400.0
    assert growing.to_edge_metrics().buffer_runway_s == 5400.0
    assert parse(prometheus_text(growing))["edge_buffer_runway_seconds"] == 5400.0
    assert "full in 90.0 min" in render_status(growing.to_json())
    assert "full in 90.0 min" in summary_line(growing.to_json())
    full = dataclasses.replace(make_status(), buffer_runway_s=0.0)
    assert "FULL, dropping oldest" in render_status(full.to_json())
    steady = make_status()
    assert steady.to_json()["buffer"]["runway_s"] is None
    assert steady.to_edge_metrics().buffer_runway_s is None
    text = prometheus_text(steady)
    assert "# TYPE edge_buffer_runway_seconds gauge" in text
    assert "edge_buffer_runway_seconds" not in parse(text)
    assert "not growing" in render_status(steady.to_json())
    assert "full in" not in summary_line(steady.to_json())
