"""`telemetry_record`, the gateway's hot path, against the pydantic path it replaces
(`encode(decode_telemetry(...))`): the same bytes for every accepted payload, the same refusal
(reason and message) for every other one."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import DecodeError, NormalisedReading, encode
from protocol.codec import decode_telemetry, parse_topic, telemetry_record
from protocol.models import MAX_METRIC_MAGNITUDE
from tests.support.fuzz import NASTY_TEXT, OFFSETS, T0, VALID_NAMES, device_payloads

FUZZ = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = T0 + 3_600_000
TELEMETRY = parse_topic("plant/site-1/cnc-1/telemetry")


Outcome = tuple[int | None, bytes] | str  # (seq, value), or the refusal "reason: detail"


def outcome(make: Any, payload: bytes, gateway_id: str = "gw-1") -> Outcome:
    try:
        result: tuple[int | None, bytes] = make(
            TELEMETRY, payload, received_ts=NOW, gateway_id=gateway_id
        )
    except DecodeError as exc:
        return str(exc)
    return result


def pydantic_path(topic: Any, payload: bytes, **kwargs: Any) -> tuple[int | None, bytes]:
    reading = decode_telemetry(topic, payload, **kwargs)
    return reading.seq, encode(reading)


def assert_same(payload: bytes, gateway_id: str = "gw-1", *, revalidate: bool = True) -> Outcome:
    new = outcome(telemetry_record, payload, gateway_id)
    assert new == outcome(pydantic_path, payload, gateway_id)
    if isinstance(new, tuple) and revalidate:
        seq, value = new
        # And what a fully validated model writes: nothing model_construct let through.
        full = NormalisedReading.model_validate_json(value)
        assert encode(full) == value
        assert full.seq == seq
    return new


def accepted(payload: bytes, gateway_id: str = "gw-1", **kwargs: bool) -> tuple[int | None, bytes]:
    result = assert_same(payload, gateway_id, **kwargs)
    assert isinstance(result, tuple), result
    return result


# Accepted payloads of every shape: floats of any size within the limit, booleans, integers
# (written as floats), seq up to PostgreSQL's bigint, epoch ms or RFC 3339 timestamps.
FINITE = st.floats(min_value=-MAX_METRIC_MAGNITUDE, max_value=MAX_METRIC_MAGNITUDE, allow_nan=False)
VALUES = st.one_of(
    st.booleans(),
    FINITE,
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([1e-7, -1e-7, 5e-324, -0.0, 0.0, 1e15, -1e15, 0.1, 1e-300, 123456.789]),
)
# Within the default window around the receiving clock (7 days back, 1 hour ahead).
IN_WINDOW = st.integers(min_value=NOW - 6 * 86_400_000, max_value=NOW + 1_800_000)
SEQS = st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1))
TIMESTAMPS = st.one_of(
    st.none(),
    IN_WINDOW,
    st.builds(
        lambda ms, tz: datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds"),
        IN_WINDOW,
        OFFSETS,
    ),
)


@st.composite
def valid_payloads(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {
        "metrics": draw(st.dictionaries(VALID_NAMES, VALUES, min_size=1, max_size=8))
    }
    for field, strategy in (("ts", TIMESTAMPS), ("seq", SEQS), ("type", VALID_NAMES)):
        if draw(st.booleans()):
            body[field] = draw(strategy)
    return json.dumps(body, ensure_ascii=draw(st.booleans())).encode()


@FUZZ
@given(valid_payloads())
def test_accepted_payloads_encode_to_the_same_bytes(payload: bytes) -> None:
    accepted(payload)


@FUZZ
@given(device_payloads())
def test_hostile_payloads_get_the_same_outcome(payload: bytes) -> None:
    assert_same(payload)


@FUZZ
@given(NASTY_TEXT)
def test_unicode_and_control_characters_get_the_same_outcome(text: str) -> None:
    for body in (
        {"type": text, "metrics": {"a": 1.0}},
        {"metrics": {text: 1.0}},
        {"ts": text, "metrics": {"a": 1.0}},
    ):
        assert_same(json.dumps(body, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    ("metrics", "written"),
    [
        ('{"a":1e-7}', b'{"a":1e-7}'),
        ('{"a":5e-324}', b'{"a":5e-324}'),
        ('{"a":-0.0}', b'{"a":-0.0}'),
        ('{"a":1e15}', b'{"a":1000000000000000.0}'),
        ('{"a":5}', b'{"a":5.0}'),
        ('{"a":true,"b":false}', b'{"a":true,"b":false}'),
        ('{"a":0.30000000000000004}', b'{"a":0.30000000000000004}'),
    ],
)
def test_numbers_and_booleans_are_written_as_pydantic_writes_them(
    metrics: str, written: bytes
) -> None:
    payload = f'{{"seq":9223372036854775807,"metrics":{metrics}}}'.encode()
    seq, value = accepted(payload)
    assert seq == 2**63 - 1
    assert b'"metrics":' + written in value


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"metrics":{"a":NaN}}', "non_finite_number"),
        (b'{"metrics":{"a":Infinity}}', "non_finite_number"),
        (b'{"metrics":{"a":1e16}}', "value_out_of_range"),
        (b'{"metrics":{"a":123456789012345678901234567890}}', "value_out_of_range"),
        (b'{"seq":9223372036854775808,"metrics":{"a":1}}', "wrong_shape"),
        (b'{"seq":true,"metrics":{"a":1}}', "wrong_shape"),
        (b'{"metrics":{"a":"1"}}', "wrong_shape"),
        ('{"metrics":{"tempé":1}}'.encode(), "bad_metric_name"),
        ('{"type":"ünï","metrics":{"a":1}}'.encode(), "wrong_shape"),
        (b'{"metrics":{"a":1}', "invalid_json"),
        (b'\xff{"metrics":{"a":1}}', "invalid_utf8"),
        (b'{"ts":1,"metrics":{"a":1}}', "ts_out_of_range"),
    ],
)
def test_refusals_keep_their_reason_and_message(payload: bytes, reason: str) -> None:
    result = assert_same(payload)
    assert isinstance(result, str), result
    assert result.startswith(f"{reason}: ")


def test_a_gateway_id_needing_escapes_is_written_as_pydantic_writes_it() -> None:
    # Settings keep gateway ids to identifiers; the encoder must not rely on it.
    for gateway_id in ('g"w\\1', "gw-\u00e9\u2028", "gw\x00\n"):
        _, value = accepted(b'{"metrics":{"a":1.5}}', gateway_id, revalidate=False)
        assert json.loads(value)["gateway_id"] == gateway_id


def test_the_value_is_compact_json_of_the_reading() -> None:
    _, value = telemetry_record(
        TELEMETRY,
        b'{"ts":1764268800123,"seq":7,"type":"cnc","metrics":{"t":61.25,"on":true}}',
        received_ts=NOW,
        gateway_id="gw-1",
    )
    assert value == (
        b'{"v":1,"site":"site-1","device_id":"cnc-1","type":"cnc","ts":1764268800123,"seq":7,'
        b'"metrics":{"t":61.25,"on":true},"gateway_id":"gw-1","received_ts":1764272400000}'
    )
    assert math.isclose(json.loads(value)["metrics"]["t"], 61.25)
