"""Fuzzing the edge codec and the hub's decoders with hostile input (tests/support/fuzz.py).

What must hold for every input: the codec either refuses with one of its documented reasons or
produces a record the hub accepts as it is; whatever the hub accepts can be stored, dated and
serialised (finite values within the magnitude limit, dates PostgreSQL and Python hold, names
and identifiers of the documented shape); nothing raises anything but a `DecodeError`."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.agents.records import TsBound, decode_records, decode_timestamped
from hub.storage.partitions import ms_to_datetime
from hub.storage.redis_values import GatewayHealth, encode_gateway_health
from protocol import DecodeError, DeviceStatus, EdgeMetrics, NormalisedReading, encode
from protocol.codec import REASONS, decode_status, decode_telemetry, parse_topic
from protocol.models import MAX_EPOCH_MS, MAX_METRIC_MAGNITUDE, METRIC_NAME_PATTERN
from protocol.topics import IDENTIFIER_PATTERN, MqttTopic
from tests.support.fuzz import (
    NASTY_TEXT,
    T0,
    device_payloads,
    dumps,
    kafka_readings,
    status_payloads,
)
from tests.support.readings import make_edge_metrics

FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = T0 + 3_600_000
TELEMETRY = parse_topic("plant/site-1/cnc-1/telemetry")
STATUS = parse_topic("plant/site-1/cnc-1/status")
NAME = re.compile(METRIC_NAME_PATTERN)
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def assert_storable(reading: NormalisedReading) -> None:
    """What PostgreSQL, Redis, the rules and the dashboard need of an accepted reading."""
    for ts in (reading.ts, reading.received_ts):
        assert 0 <= ts <= MAX_EPOCH_MS
        ms_to_datetime(ts)
    for name, value in reading.metrics.items():
        assert NAME.match(name), name
        if not isinstance(value, bool):
            assert math.isfinite(value)
            assert abs(value) <= MAX_METRIC_MAGNITUDE
    for ident in (reading.site, reading.device_id, reading.gateway_id):
        assert IDENTIFIER.fullmatch(ident), ident
    assert reading.type is None or NAME.match(reading.type)
    json.dumps(reading.metrics, allow_nan=False)


def refusal(exc: DecodeError) -> str:
    assert exc.reason in REASONS
    assert str(exc).startswith(f"{exc.reason}: ")
    return exc.reason


@FUZZ
@given(device_payloads())
def test_the_edge_codec_refuses_with_a_reason_or_the_hub_accepts_what_it_made(
    payload: bytes,
) -> None:
    try:
        reading = decode_telemetry(TELEMETRY, payload, received_ts=NOW, gateway_id="gw-1")
    except DecodeError as exc:
        refusal(exc)
        return
    assert_storable(reading)
    good, invalid = decode_timestamped(
        [encode(reading)], NormalisedReading, TsBound(clock_ms=lambda: NOW)
    )
    assert invalid == []
    assert good[0][1] == reading


@FUZZ
@given(status_payloads())
def test_a_status_the_edge_accepts_is_one_the_hub_accepts(payload: bytes) -> None:
    try:
        status = decode_status(STATUS, payload, received_ts=NOW, gateway_id="gw-1")
    except DecodeError as exc:
        refusal(exc)
        return
    assert 0 <= status.ts <= NOW + 3_600_000
    ms_to_datetime(status.ts)
    good, invalid = decode_timestamped(
        [encode(status)], DeviceStatus, TsBound(clock_ms=lambda: NOW)
    )
    assert invalid == []
    assert good[0][1] == status


@FUZZ
@given(kafka_readings())
def test_the_hub_decoder_dead_letters_or_accepts_only_storable_readings(raw: bytes) -> None:
    good, invalid = decode_timestamped([raw], NormalisedReading, TsBound(clock_ms=lambda: NOW))
    assert len(good) + len(invalid) == 1
    if good:
        assert_storable(good[0][1])
    else:
        ((value, error),) = invalid
        assert value == raw
        assert error.split(":", 1)[0] in REASONS
        assert len(error) <= 500


@FUZZ
@given(st.binary(max_size=300) | NASTY_TEXT.map(str.encode))
def test_any_bytes_are_decoded_or_dead_lettered_never_raised(raw: bytes) -> None:
    for model in (NormalisedReading, DeviceStatus, EdgeMetrics):
        good, invalid = decode_records([raw], model)
        assert len(good) + len(invalid) == 1


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(sorted(EdgeMetrics.model_fields)),
        st.one_of(NASTY_TEXT, st.floats(), st.integers(), st.booleans(), st.none()),
    )
)
def test_a_heartbeat_the_hub_accepts_can_be_shown(fields: dict[str, object]) -> None:
    base = json.loads(encode(make_edge_metrics("gw-1", T0)))
    good, _ = decode_records([dumps(base | fields)], EdgeMetrics)
    for _, metrics in good:
        assert IDENTIFIER.fullmatch(metrics.gateway_id)
        # allow_nan=False: raises on a non-finite number
        encode_gateway_health(GatewayHealth.received(metrics, NOW))


@FUZZ
@given(NASTY_TEXT, NASTY_TEXT)
def test_topics_are_parsed_or_refused_with_bad_topic(site: str, device: str) -> None:
    topic = f"plant/{site}/{device}/telemetry"
    if IDENTIFIER.fullmatch(site) and IDENTIFIER.fullmatch(device):
        assert parse_topic(topic) == MqttTopic(site, device, "telemetry")
        return
    with pytest.raises(DecodeError) as info:
        parse_topic(topic)
    assert refusal(info.value) == "bad_topic"
