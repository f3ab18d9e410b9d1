from __future__ import annotations

import json

import pytest

from edge_gateway.routing import MAX_DEAD_LETTER_BYTES, MessageRouter, SeqTracker
from protocol import topics

NOW = 1_795_000_000_000


@pytest.fixture
def router() -> MessageRouter:
    return MessageRouter("gw-1", max_past_ms=86_400_000, max_future_ms=3_600_000)


def telemetry(seq: int | None = None, ts: int = NOW, **metrics: float) -> bytes:
    body: dict[str, object] = {"ts": ts, "metrics": metrics or {"temp_c": 20.5}}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


def test_reading_goes_to_telemetry_keyed_by_device(router: MessageRouter) -> None:
    routed = router.route("plant/s1/cnc-01/telemetry", telemetry(seq=1), NOW)
    assert routed.kind == "reading"
    assert routed.record.topic == topics.TELEMETRY
    assert routed.record.key == b"cnc-01"
    assert routed.record.created_ms == NOW
    value = json.loads(routed.record.value)
    assert (value["site"], value["device_id"], value["seq"], value["gateway_id"]) == (
        "s1",
        "cnc-01",
        1,
        "gw-1",
    )


def test_status_goes_to_device_status(router: MessageRouter) -> None:
    routed = router.route("plant/s1/cnc-01/status", b'{"state": "online"}', NOW)
    assert routed.kind == "status"
    assert routed.record.topic == topics.DEVICE_STATUS
    assert json.loads(routed.record.value)["state"] == "online"


def test_dead_letter_keeps_raw_payload_and_reason_headers(router: MessageRouter) -> None:
    routed = router.route("plant/s1/cnc-01/telemetry", b"\x00garbage", NOW)
    assert routed.kind == "dead_letter"
    assert routed.reason == "invalid_json"
    rec = routed.record
    assert (rec.topic, rec.key, rec.value) == (topics.TELEMETRY_DLQ, b"cnc-01", b"\x00garbage")
    headers = dict(rec.headers)
    assert headers["error"].startswith(b"invalid_json: ")
    assert headers["mqtt_topic"] == b"plant/s1/cnc-01/telemetry"
    assert headers["gateway_id"] == b"gw-1"
    assert headers["received_ts"] == str(NOW).encode()
    assert router.dead_letters_by_reason == {"invalid_json": 1}


def test_bad_topic_dead_letter_has_no_key(router: MessageRouter) -> None:
    routed = router.route("plant/s 1/cnc-01/telemetry", telemetry(), NOW)
    assert (routed.kind, routed.reason, routed.record.key) == ("dead_letter", "bad_topic", None)


def test_huge_payload_is_truncated_in_the_dead_letter(router: MessageRouter) -> None:
    payload = b"x" * (1024 * 1024)
    routed = router.route("plant/s1/cnc-01/telemetry", payload, NOW)
    assert routed.reason == "payload_too_large"
    assert len(routed.record.value) == MAX_DEAD_LETTER_BYTES
    assert dict(routed.record.headers)["truncated_from"] == b"1048576"


def test_repeated_seq_with_the_same_payload_is_a_duplicate(router: MessageRouter) -> None:
    first = router.route("plant/s1/cnc-01/telemetry", telemetry(seq=5), NOW)
    again = router.route("plant/s1/cnc-01/telemetry", telemetry(seq=5), NOW + 10)
    other_device = router.route("plant/s1/cnc-02/telemetry", telemetry(seq=5), NOW)
    assert (first.kind, again.kind, again.reason, other_device.kind) == (
        "reading",
        "dead_letter",
        "duplicate_seq",
        "reading",
    )


def test_device_restarting_its_counter_is_not_a_duplicate(router: MessageRouter) -> None:
    for seq in range(100):
        router.route("plant/s1/d/telemetry", telemetry(seq=seq, ts=NOW - 1000 + seq), NOW)
    restarted = router.route("plant/s1/d/telemetry", telemetry(seq=0, ts=NOW), NOW)
    assert restarted.kind == "reading"
    assert router.seq.resets_total == 1


def test_seq_tracker_counts_gaps_and_bounds_its_memory() -> None:
    tracker = SeqTracker(window=4)
    assert tracker.observe("d", 1, 11)
    assert tracker.observe("d", 2, 12)
    assert tracker.observe("d", 6, 16)  # 3, 4, 5 missing
    assert tracker.gaps_total == 3
    assert not tracker.observe("d", 2, 12)
    assert tracker.observe("d", 2, 99)  # same seq, other payload: real data, kept
    for seq in range(7, 20):
        assert tracker.observe("d", seq, seq + 10)
    assert tracker.observe("d", 1, 11)  # long out of the window: no longer remembered
    assert len(tracker._devices["d"].recent) == 4


def test_late_out_of_order_seq_within_window_is_kept() -> None:
    tracker = SeqTracker()
    assert tracker.observe("d", 1, 1)
    assert tracker.observe("d", 3, 3)
    assert tracker.observe("d", 2, 2)  # arrived late, never seen: real data
    assert not tracker.observe("d", 2, 2)
    assert tracker.resets_total == 0
