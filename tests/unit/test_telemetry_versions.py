"""`iot.telemetry` values of both versions: version 1 (one reading) and version 2 (several
readings of one device), read as untrusted by `decode_telemetry_value`."""

from __future__ import annotations

import json

import pytest

from protocol import (
    DecodeError,
    NormalisedReading,
    TelemetryBatch,
    decode_telemetry_value,
    encode,
    encode_telemetry_batch,
)
from protocol.codec import telemetry_version
from protocol.models import MAX_PAYLOAD_BYTES
from protocol.schema import SCHEMAS, render


def reading(device: str = "cnc-01", seq: int = 1) -> NormalisedReading:
    return NormalisedReading(
        site="site-1",
        device_id=device,
        type="cnc_spindle",
        ts=1_795_000_000_000 + seq,
        seq=seq,
        metrics={"spindle_temp_c": 61.2, "running": True},
        gateway_id="gw-1",
        received_ts=1_795_000_000_005 + seq,
    )


def refusal(value: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode_telemetry_value(value)
    return str(info.value)


def test_packing_encoded_values_gives_the_models_encoding() -> None:
    readings = [reading(seq=1), reading(seq=2)]
    packed = encode_telemetry_batch([encode(r) for r in readings])
    assert packed == encode(TelemetryBatch(readings=readings))
    assert decode_telemetry_value(packed) == readings


def test_version_1_values_read_as_before() -> None:
    one = reading()
    assert decode_telemetry_value(encode(one)) == [one]
    # Without "v", or formatted otherwise, a value is still version 1.
    body = json.loads(encode(one))
    del body["v"]
    assert decode_telemetry_value(json.dumps(body, indent=1).encode()) == [one]


def test_the_version_is_read_however_the_value_is_formatted() -> None:
    packed = json.dumps({"readings": [json.loads(encode(reading()))], "v": 2}, indent=2)
    assert telemetry_version(packed) == 2
    assert decode_telemetry_value(packed.encode()) == [reading()]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b'{"v":3,"x":1}', "wrong_shape: v 3 is not a version this reader knows (1, 2)"),
        (b'{"v":"2"}', "wrong_shape: v: "),
        (b"[1]", "wrong_shape: payload: "),
        (b"{nope", "invalid_json: "),
        (b'{"v":2,"readings":[]}', "wrong_shape: readings: "),
        (b'{"v":2,"readings":[],"extra":1}', "wrong_shape: "),
    ],
)
def test_values_of_no_known_version_or_shape_are_refused(value: bytes, error: str) -> None:
    assert refusal(value).startswith(error)


def test_a_bad_reading_refuses_its_value_with_its_own_reason_and_place() -> None:
    good = encode(reading(seq=1))
    bad = encode(reading(seq=2)).replace(b'"spindle_temp_c"', b'"Temp"')
    assert refusal(encode_telemetry_batch([good, bad])).startswith(
        "bad_metric_name: readings.1: metric name 'Temp'"
    )
    assert refusal(encode_telemetry_batch([good, good.replace(b"61.2", b"1e999")])).startswith(
        "non_finite_number: readings.1: metrics.spindle_temp_c"
    )


def test_one_value_holds_one_device() -> None:
    mixed = encode_telemetry_batch([encode(reading("a")), encode(reading("b"))])
    assert "more than one device_id" in refusal(mixed)


def test_size_bounds_per_version() -> None:
    # Version 1 keeps its 64 KiB bound; version 2 may be larger (up to 1 MiB).
    big = reading()
    metrics = {f"m{i:03d}_{'x' * 50}": float(i) for i in range(250)}
    big = big.model_copy(update={"metrics": metrics})
    value = encode(big)
    packed = encode_telemetry_batch([value] * (2 * MAX_PAYLOAD_BYTES // len(value)))
    assert len(packed) > MAX_PAYLOAD_BYTES
    assert len(decode_telemetry_value(packed)) > 1
    padded = value[:-1] + b" " * MAX_PAYLOAD_BYTES + b"}"
    assert refusal(padded).startswith("payload_too_large: ")


def test_the_kafka_value_schema_names_both_versions() -> None:
    schema = json.loads(render(SCHEMAS["kafka-telemetry.schema.json"]))
    assert {"NormalisedReading", "TelemetryBatch"} <= set(schema["$defs"])
