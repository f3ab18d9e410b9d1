"""The bounds that keep one device message from poisoning the hub: value magnitude, and
timestamps that must convert to a date every library holds, for telemetry and status alike."""

from __future__ import annotations

import pytest

from protocol import DecodeError, decode_status, decode_telemetry, parse_mqtt_topic
from protocol.models import MAX_EPOCH_MS, MAX_METRIC_MAGNITUDE

NOW = 1_795_000_000_000
TELEMETRY = parse_mqtt_topic("plant/site-1/cnc-01/telemetry")
STATUS = parse_mqtt_topic("plant/site-1/cnc-01/status")


def telemetry_reason(payload: str) -> str:
    with pytest.raises(DecodeError) as info:
        decode_telemetry(TELEMETRY, payload.encode(), received_ts=NOW, gateway_id="gw-1")
    return info.value.reason


def status_reason(payload: str) -> str:
    with pytest.raises(DecodeError) as info:
        decode_status(STATUS, payload.encode(), received_ts=NOW, gateway_id="gw-1")
    return info.value.reason


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1.0000001e15", "-2e15", "9" * 40])
def test_values_beyond_the_magnitude_limit_are_refused(value: str) -> None:
    assert telemetry_reason('{"metrics": {"spindle_temp_c": ' + value + "}}") == (
        "value_out_of_range"
    )


@pytest.mark.parametrize("value", [MAX_METRIC_MAGNITUDE, -MAX_METRIC_MAGNITUDE, 5e-324, 0.0])
def test_values_up_to_the_limit_are_kept(value: float) -> None:
    payload = f'{{"metrics": {{"a": {value!r}}}}}'.encode()
    reading = decode_telemetry(TELEMETRY, payload, received_ts=NOW, gateway_id="gw-1")
    assert reading.metrics["a"] == value


@pytest.mark.parametrize(
    "ts",
    [
        '"9999-12-31T23:59:59-23:59"',  # year 10000 in UTC: valid ISO, beyond datetime's range
        '"0001-01-01T00:00:00+23:59"',  # year 0 in UTC
        '"1969-12-31T23:59:59Z"',  # before the epoch
        str(MAX_EPOCH_MS + 1),
        "-1",
    ],
)
def test_status_ts_outside_1970_to_9999_is_refused(ts: str) -> None:
    assert status_reason(f'{{"state": "online", "ts": {ts}}}') == "ts_out_of_range"


def test_status_ts_far_in_the_future_is_refused() -> None:
    # The hub ignores statuses older than the newest applied: this one would freeze the state.
    assert status_reason(f'{{"state": "online", "ts": {NOW + 3_600_001}}}') == "ts_out_of_range"


def test_old_retained_status_is_still_taken() -> None:
    status = decode_status(
        STATUS,
        b'{"state": "offline", "ts": "2020-01-01T00:00:00Z"}',
        received_ts=NOW,
        gateway_id="gw-1",
    )
    assert status.ts == 1_577_836_800_000


def test_telemetry_ts_string_beyond_year_9999_is_refused() -> None:
    payload = '{"ts": "9999-12-31T23:59:59-23:59", "metrics": {"a": 1}}'
    assert telemetry_reason(payload) == "ts_out_of_range"
