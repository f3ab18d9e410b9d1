from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocol import (
    DecodeError,
    DevicePayload,
    decode_status,
    decode_telemetry,
    encode,
    parse_mqtt_topic,
    status_topic,
    telemetry_topic,
)
from protocol.codec import REASONS, parse_topic, resolve_ts
from protocol.schema import SCHEMAS, render
from protocol.topics import TopicError

NOW = 1_795_000_000_000
TOPIC = parse_mqtt_topic("plant/site-1/cnc-01/telemetry")


def decode(payload: bytes | str) -> object:
    raw = payload.encode() if isinstance(payload, str) else payload
    return decode_telemetry(TOPIC, raw, received_ts=NOW, gateway_id="gw-1")


def reason_of(payload: bytes | str) -> str:
    with pytest.raises(DecodeError) as info:
        decode(payload)
    assert info.value.reason in REASONS
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason


def test_valid_payload_is_normalised() -> None:
    reading = decode_telemetry(
        TOPIC,
        json.dumps(
            {
                "ts": NOW - 5,
                "seq": 17,
                "type": "cnc_spindle",
                "metrics": {"spindle_temp_c": 61.2, "running": True, "count": 3},
            }
        ).encode(),
        received_ts=NOW,
        gateway_id="gw-1",
    )
    assert json.loads(encode(reading)) == {
        "v": 1,
        "site": "site-1",
        "device_id": "cnc-01",
        "type": "cnc_spindle",
        "ts": NOW - 5,
        "seq": 17,
        "metrics": {"spindle_temp_c": 61.2, "running": True, "count": 3.0},
        "gateway_id": "gw-1",
        "received_ts": NOW,
    }


def test_booleans_stay_booleans_and_integers_become_floats() -> None:
    reading = decode('{"metrics": {"a": true, "b": 1, "c": 0}}')
    assert reading.metrics == {"a": True, "b": 1.0, "c": 0.0}  # type: ignore[attr-defined]
    assert type(reading.metrics["b"]) is float  # type: ignore[attr-defined]


def test_missing_ts_means_receive_time_and_rfc3339_is_accepted() -> None:
    assert decode('{"metrics": {"a": 1}}').ts == NOW  # type: ignore[attr-defined]
    iso = decode('{"ts": "2026-11-18T10:30:00.250+01:00", "metrics": {"a": 1}}')
    expected = datetime(2026, 11, 18, 9, 30, 0, 250_000, tzinfo=UTC).timestamp() * 1000
    assert iso.ts == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "invalid_json"),
        (b'\xff\xfe{"metrics": {}}', "invalid_utf8"),
        ("[1, 2, 3]", "wrong_shape"),
        ('{"metrics": [1, 2]}', "wrong_shape"),
        ('{"metrics": {"a": "12.5"}}', "wrong_shape"),
        ('{"metrics": {"a": null}}', "wrong_shape"),
        ('{"metrics": {"a": 1}, "seq": -1}', "wrong_shape"),
        ('{"metrics": {"a": 1}, "seq": true}', "wrong_shape"),
        ('{"metrics": {"a": 1}, "extra": 1}', "wrong_shape"),
        ('{"metrics": {"a": NaN}}', "non_finite_number"),
        ('{"metrics": {"a": Infinity}}', "non_finite_number"),
        ('{"metrics": {"a": -Infinity}}', "non_finite_number"),
        ('{"metrics": {"a": 1e999}}', "non_finite_number"),
        ('{"metrics": {"Temp": 1}}', "bad_metric_name"),
        ('{"metrics": {"1a": 1}}', "bad_metric_name"),
        ('{"metrics": {"' + "a" * 65 + '": 1}}', "bad_metric_name"),
        ('{"metrics": {}}', "no_metrics"),
        ('{"ts": "yesterday", "metrics": {"a": 1}}', "bad_ts"),
        ('{"ts": "2026-11-18T20:26:40", "metrics": {"a": 1}}', "bad_ts"),
        ('{"ts": 1577836800000, "metrics": {"a": 1}}', "ts_out_of_range"),
        ('{"ts": 1795000000, "metrics": {"a": 1}}', "ts_out_of_range"),
        ('{"ts": 4102444800000, "metrics": {"a": 1}}', "ts_out_of_range"),
    ],
)
def test_bad_payloads_have_precise_reasons(payload: str | bytes, reason: str) -> None:
    assert reason_of(payload) == reason


def test_metric_count_bounds() -> None:
    ok = {f"m{i}": i for i in range(256)}
    assert len(decode(json.dumps({"metrics": ok})).metrics) == 256  # type: ignore[attr-defined]
    too_many = {f"m{i}": i for i in range(257)}
    assert reason_of(json.dumps({"metrics": too_many})) == "too_many_metrics"


def test_payload_size_limit_is_checked_before_parsing() -> None:
    big = b'{"metrics": {"a": 1}, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    with pytest.raises(DecodeError) as info:
        decode(big)
    assert info.value.reason == "payload_too_large"
    assert "1048" in info.value.detail


def test_seconds_instead_of_milliseconds_gets_a_hint() -> None:
    with pytest.raises(DecodeError, match="looks like seconds"):
        resolve_ts(NOW // 1000, NOW)


@pytest.mark.parametrize(
    "topic",
    [
        "plant/site-1/cnc-01",
        "factory/site-1/cnc-01/telemetry",
        "plant/site 1/cnc-01/telemetry",
        "plant/site-1/cnc<script>/telemetry",
        "plant/site-1/cnc-01/metrics",
        "plant//cnc-01/telemetry",
        "plant/site-1/" + "d" * 65 + "/telemetry",
        "plant/site-1/cnc-01/telemetry/extra",
    ],
)
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_topic(topic)
    assert info.value.reason == "bad_topic"


def test_topic_builders_round_trip_and_validate() -> None:
    assert parse_mqtt_topic(telemetry_topic("s.1", "d_2")).kind == "telemetry"
    assert parse_mqtt_topic(status_topic("s.1", "d_2")).device_id == "d_2"
    with pytest.raises(TopicError):
        telemetry_topic("s/1", "d")


def test_status_payload() -> None:
    topic = parse_mqtt_topic("plant/site-1/cnc-01/status")
    status = decode_status(topic, b'{"state": "offline"}', received_ts=NOW, gateway_id="gw")
    assert (status.state, status.ts, status.device_id) == ("offline", NOW, "cnc-01")
    with pytest.raises(DecodeError):
        decode_status(topic, b'{"state": "sleeping"}', received_ts=NOW, gateway_id="gw")


def test_committed_json_schemas_are_current() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    for name, model in SCHEMAS.items():
        assert (docs / name).read_text() == render(model), f"run `make schema` to refresh {name}"


def test_schema_example_is_valid() -> None:
    example = DevicePayload.model_json_schema()["examples"][0]
    assert DevicePayload.model_validate(example).metrics["running"] is True
