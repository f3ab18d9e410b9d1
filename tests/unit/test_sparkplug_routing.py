"""Sparkplug messages through the router: the host's readings and statuses take our validation
and records; refusals are dead letters; commands wait for the intake."""

from __future__ import annotations

import json
from typing import Any

from edge_gateway.routing import MessageRouter
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.host import SparkplugHost
from edge_gateway.stats import SparkplugStatus
from edge_gateway.status_view import render_status
from protocol import topics

NOW = 1_795_000_000_000


def router(host: SparkplugHost | None) -> MessageRouter:
    return MessageRouter("gw-1", max_past_ms=86_400_000, max_future_ms=3_600_000, sparkplug=host)


def payload(seq: int | None, ts: int = NOW, **metric: Any) -> bytes:
    p = pb.Payload(timestamp=ts)
    if seq is not None:
        p.seq = seq
    if metric:
        p.metrics.add(**metric)
    return bytes(p.SerializeToString())


BIRTH = payload(0, name="Line Speed", alias=1, datatype=pb.Double, double_value=2.5)


def test_sparkplug_topics_are_taken_only_with_the_host_on() -> None:
    on, off = router(SparkplugHost()), router(None)
    assert on.takes("spBv1.0/g/NDATA/n")
    assert not on.takes("spBv1.0/STATE/host")
    assert not on.takes("spBv1.0/g/NCMD/n")
    assert not off.takes("spBv1.0/g/NDATA/n")
    assert on.takes("plant/s/d/telemetry")
    assert off.takes("plant/s/d/telemetry")
    # without the host a spBv1.0 topic is routed as ours would be: a bad topic
    assert [r.reason for r in off.route_all("spBv1.0/g/NDATA/n", BIRTH, NOW)] == ["bad_topic"]


def test_a_birth_becomes_a_status_a_metadata_and_a_reading_record() -> None:
    r = router(SparkplugHost())
    status, metadata, reading = r.route_all("spBv1.0/line1/NBIRTH/press", BIRTH, NOW)
    assert (metadata.kind, metadata.record.topic, metadata.record.key) == (
        "metadata",
        topics.KafkaTopics().device_metadata,
        b"press",
    )
    report = json.loads(metadata.record.value)
    assert (report["site"], report["gateway_id"], report["source"], report["ts"]) == (
        "line1",
        "gw-1",
        "sparkplug",
        NOW,
    )
    line_speed = {k: v for k, v in report["metrics"]["line_speed"].items() if v is not None}
    assert line_speed == {"source_name": "Line Speed"}
    assert (status.kind, status.record.topic, status.record.key) == (
        "status",
        topics.DEVICE_STATUS,
        b"press",
    )
    assert reading.kind == "reading"
    value = json.loads(reading.record.value)
    assert (value["site"], value["device_id"], value["metrics"], value["ts"]) == (
        "line1",
        "press",
        {"line_speed": 2.5},
        NOW,
    )


def test_metadata_records_take_the_routers_topic_prefix() -> None:
    r = MessageRouter(
        "gw-1",
        max_past_ms=86_400_000,
        max_future_ms=3_600_000,
        sparkplug=SparkplugHost(),
        kafka_topics=topics.KafkaTopics("dev."),
    )
    kinds = {x.kind: x for x in r.route_all("spBv1.0/line1/NBIRTH/press", BIRTH, NOW)}
    assert kinds["metadata"].record.topic == "dev.iot.device-metadata"


def test_a_data_message_sends_no_metadata() -> None:
    r = router(SparkplugHost())
    r.route_all("spBv1.0/line1/NBIRTH/press", BIRTH, NOW)
    data = payload(1, alias=1, datatype=pb.Double, double_value=3.0)
    assert [x.kind for x in r.route_all("spBv1.0/line1/NDATA/press", data, NOW)] == ["reading"]


def test_a_reading_our_validation_refuses_is_dead_lettered() -> None:
    r = router(SparkplugHost())
    r.route_all("spBv1.0/line1/NBIRTH/press", BIRTH, NOW)
    too_old = payload(1, ts=NOW - 2 * 86_400_000, alias=1, datatype=pb.Double, double_value=1.0)
    (routed,) = r.route_all("spBv1.0/line1/NDATA/press", too_old, NOW)
    assert (routed.kind, routed.reason) == ("dead_letter", "ts_out_of_range")


def test_a_corrupt_payload_is_dead_lettered_whole_with_its_raw_bytes() -> None:
    r = router(SparkplugHost())
    (routed,) = r.route_all("spBv1.0/line1/NDATA/press", b"\x0a\xff\xff", NOW)
    assert (routed.kind, routed.reason, routed.record.value) == (
        "dead_letter",
        "sparkplug_bad_payload",
        b"\x0a\xff\xff",
    )
    assert r.dead_letters_by_reason["sparkplug_bad_payload"] == 1
    headers = dict(routed.record.headers)
    assert headers["mqtt_topic"] == b"spBv1.0/line1/NDATA/press"


def test_rebirth_commands_and_notices_wait_for_the_intake() -> None:
    r = router(SparkplugHost(reorder_timeout_ms=100))
    assert r.route_all("spBv1.0/line1/NDATA/press", payload(3), NOW) == []
    commands, notices = r.take_side_effects()
    assert [c.topic for c in commands] == ["spBv1.0/line1/NCMD/press"]
    assert [n.reason for n in notices] == ["before_birth", "rebirth"]
    assert r.take_side_effects() == ([], [])
    assert r.route_all("spBv1.0/STATE/other-host", b'{"online":true}', NOW) == []


def test_tick_releases_held_data_after_the_reorder_timeout() -> None:
    r = router(SparkplugHost(reorder_timeout_ms=100))
    r.route_all("spBv1.0/line1/NBIRTH/press", BIRTH, NOW)
    held = payload(5, alias=1, datatype=pb.Double, double_value=9.0)
    assert r.route_all("spBv1.0/line1/NDATA/press", held, NOW) == []
    assert r.tick(NOW + 99) == []
    (reading,) = r.tick(NOW + 100)
    assert json.loads(reading.record.value)["metrics"] == {"line_speed": 9.0}
    commands, _ = r.take_side_effects()
    assert len(commands) == 1


def test_status_reports_the_host() -> None:
    status = SparkplugStatus("gw-1", 2, 3, {"string": 4})
    assert status.to_json() == {
        "host_id": "gw-1",
        "nodes_online": 2,
        "rebirths_requested_total": 3,
        "by_reason": {"string": 4},
    }
    view = {
        "gateway_id": "g",
        "site": "s",
        "uptime_s": 1.0,
        "mqtt": {"mode": "embedded", "address": "a", "connected": True},
        "kafka": {"bootstrap": "k", "connected": True, "last_error": None},
        "buffer": {
            "depth": 0,
            "bytes": 0,
            "max_bytes": 1,
            "oldest_age_s": None,
            "in_flight": 0,
            "dropped_total": 0,
        },
        "counters": {
            "received_total": 0,
            "forwarded_total": 0,
            "dead_lettered_total": 0,
            "kafka_rejected_total": 0,
        },
        "rates": {"received_per_s": 0.0, "forwarded_per_s": 0.0},
        "sparkplug": status.to_json(),
    }
    assert "host gw-1, 2 nodes online, 3 rebirths requested; string 4" in render_status(view)
