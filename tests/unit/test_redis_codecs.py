"""The one encoder and decoder of each Redis value and pub/sub message: round trips, the exact
stored form (which other hub versions and the WebSocket API read), and what a malformed stored
value gives (None, or the field skipped), never an exception."""

from __future__ import annotations

import json
import math
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.storage.live_messages import (
    LiveReading,
    decode_alert_message,
    decode_readings_message,
    encode_readings_message,
)
from hub.storage.redis_keys import compact_json, latest_key
from hub.storage.redis_values import (
    DevicePresence,
    GatewayHealth,
    LatestValues,
    decode_device_presence,
    decode_gateway_health,
    decode_latest,
    encode_device_presence,
    encode_gateway_health,
    encode_latest,
)
from tests.support.readings import make_edge_metrics, make_reading

T0 = 1_764_268_800_000


def as_redis_returns(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {name.encode(): value.encode() for name, value in fields.items()}


def test_key_names_and_compact_json() -> None:
    assert latest_key("cnc-01") == "iot:latest:cnc-01"
    assert compact_json({"a": [1, 2.5, True, None]}) == '{"a":[1,2.5,true,null]}'
    with pytest.raises(ValueError, match="not JSON compliant"):
        compact_json({"a": math.nan})


# -- iot:latest:{device_id} ----------------------------------------------------------------------


def test_latest_values_round_trip_through_their_hash() -> None:
    fields = encode_latest(
        {"spindle_temp_c": 61.2, "running": True}, ts=T0, site="site-1", type="cnc_spindle"
    )
    assert fields == {
        "spindle_temp_c": "61.2",
        "running": "true",
        "_ts": str(T0),
        "_site": "site-1",
        "_type": "cnc_spindle",
    }
    assert decode_latest(as_redis_returns(fields)) == LatestValues(
        {"spindle_temp_c": 61.2, "running": True}, T0, "site-1", "cnc_spindle"
    )
    assert decode_latest(fields) == decode_latest(as_redis_returns(fields))  # text replies too


def test_latest_values_without_a_type_keep_the_stored_one() -> None:
    fields = encode_latest({"n": 3.0}, ts=T0, site="s", type=None)
    assert "_type" not in fields  # HSET leaves an earlier `_type` as it is
    assert decode_latest(fields) == LatestValues({"n": 3.0}, T0, "s", None)


def test_unreadable_latest_fields_are_skipped() -> None:
    stored = {
        b"good": b"1.5",
        b"count": b"3",  # an integer comes back as a float, as the database holds it
        b"garbled": b"{nope",
        b"text": b'"a string"',
        b"nested": b"[1]",
        b"latin1": b"\xff",
        b"\xff": b"1",
        b"_ts": b"soon",
        b"_other": b"ignored",
    }
    values = decode_latest(stored)
    assert values == LatestValues({"good": 1.5, "count": 3.0}, None, None, None)
    assert isinstance(values.metrics["count"], float)
    assert decode_latest({}) == LatestValues({}, None, None, None)


# -- iot:device_state ----------------------------------------------------------------------------


def test_device_presence_round_trips_in_its_stored_form() -> None:
    presence = DevicePresence(state="offline", ts=T0, site="site-1", gateway_id="gw-1")
    stored = encode_device_presence(presence)
    assert stored == f'{{"state":"offline","ts":{T0},"site":"site-1","gateway_id":"gw-1"}}'
    assert decode_device_presence(stored) == presence
    assert decode_device_presence(stored.encode()) == presence


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b"\xff",
        b"[]",
        b'{"state": "online", "ts": 1, "site": "s"}',
        b'{"state": "asleep", "ts": 1, "site": "s", "gateway_id": "g"}',
        b'{"state": "online", "ts": "1", "site": "s", "gateway_id": "g"}',
    ],
)
def test_unreadable_device_presence_is_none(stored: bytes) -> None:
    assert decode_device_presence(stored) is None


# -- iot:gateways --------------------------------------------------------------------------------


def test_gateway_health_is_the_record_as_sent_plus_the_hub_receive_time() -> None:
    metrics = make_edge_metrics("gw-1", T0)
    health = GatewayHealth.received(metrics, T0 + 5)
    stored = encode_gateway_health(health)
    assert stored == compact_json({**metrics.model_dump(mode="json"), "received_ts": T0 + 5})
    assert list(json.loads(stored))[-1] == "received_ts"
    assert decode_gateway_health(stored) == health
    assert decode_gateway_health(stored.encode()) == health


def test_a_gateway_is_heard_at_the_earlier_of_its_clock_and_the_hubs() -> None:
    assert GatewayHealth.received(make_edge_metrics("gw-1", T0), T0 + 200).heard == T0
    ahead = GatewayHealth.received(make_edge_metrics("gw-1", T0 + 3_600_000), T0)
    assert ahead.heard == T0


def gateway_entry(**changes: object) -> bytes:
    body = json.loads(encode_gateway_health(GatewayHealth.received(make_edge_metrics("g", T0), T0)))
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b"\xff",
        b"[]",
        f'{{"ts": {T0}, "received_ts": {T0}}}'.encode(),  # a heartbeat without the record
        gateway_entry(received_ts=...),  # the record without the hub's receive time
        gateway_entry(buffer_depth="many"),
        gateway_entry(received_ts=True),
        gateway_entry(gateway_id="no spaces allowed"),
        gateway_entry(surprise=1),
    ],
)
def test_unreadable_gateway_entries_are_none(stored: bytes) -> None:
    assert decode_gateway_health(stored) is None


# -- iot:live:readings and iot:live:alerts ------------------------------------------------------


def test_live_readings_round_trip_in_the_published_form() -> None:
    readings = [
        make_reading("cnc-01", T0, {"spindle_temp_c": 61.2, "running": True}, seq=7, type="cnc"),
        make_reading("press-02", T0 + 1, {"load_pct": 3.0}),
    ]
    live = [LiveReading.of(r) for r in readings]
    message = encode_readings_message(live)
    assert message == (
        '{"v":1,"readings":['
        f'{{"site":"site-1","device_id":"cnc-01","type":"cnc","ts":{T0},"seq":7,'
        '"metrics":{"spindle_temp_c":61.2,"running":true}},'
        f'{{"site":"site-1","device_id":"press-02","type":null,"ts":{T0 + 1},"seq":null,'
        '"metrics":{"load_pct":3.0}}]}'
    )
    assert decode_readings_message(message) == live
    assert decode_readings_message(message.encode()) == live
    # What the WebSocket API forwards is what the worker published.
    assert [r.to_json() for r in live] == json.loads(message)["readings"]


def test_a_normalised_reading_is_published_as_its_live_reading() -> None:
    readings = [
        make_reading(
            "cnc-01", T0, {"temp_c": -1e15, "vibration": 1e-7, "running": False}, seq=2**63 - 1
        ),
        make_reading("press-02", T0 + 1, {"load_pct": -0.1}, type="press"),
    ]
    live = [LiveReading.of(r) for r in readings]
    message = encode_readings_message(readings)
    assert message == encode_readings_message(live)
    assert decode_readings_message(message) == live
    assert json.loads(message)["readings"] == [r.to_json() for r in live]


def test_metrics_in_any_mapping_are_published_as_an_object() -> None:
    reading = LiveReading("s", "d", None, 1, None, MappingProxyType({"n": 1.5, "on": True}))
    message = encode_readings_message([reading])
    assert json.loads(message)["readings"][0]["metrics"] == {"n": 1.5, "on": True}


GOOD = {"site": "s", "device_id": "d", "type": None, "ts": 1, "seq": None, "metrics": {"n": 1.5}}


def test_an_integer_metric_value_is_passed_on_as_it_came() -> None:
    message = compact_json({"v": 1, "readings": [{**GOOD, "metrics": {"n": 1}}]})
    (reading,) = decode_readings_message(message) or []
    assert encode_readings_message([reading]) == message


@pytest.mark.parametrize(
    "message",
    [b"not json", b"\xff", b"[1]", b"{}", b'{"readings": 3}', b'{"readings": {"a": 1}}'],
)
def test_an_unreadable_readings_message_is_none(message: bytes) -> None:
    assert decode_readings_message(message) is None


@pytest.mark.parametrize(
    "item",
    [
        "junk",
        None,
        {k: v for k, v in GOOD.items() if k != "ts"},
        {k: v for k, v in GOOD.items() if k != "site"},
        {**GOOD, "device_id": 5},
        {**GOOD, "ts": True},
        {**GOOD, "ts": 1.5},
        {**GOOD, "seq": "1"},
        {**GOOD, "type": 3},
        {**GOOD, "metrics": [1]},
        {**GOOD, "metrics": {"n": "hot"}},
        {**GOOD, "metrics": {"n": None}},
    ],
)
def test_items_that_are_not_readings_are_left_out(item: object) -> None:
    message = json.dumps({"v": 1, "readings": [item, GOOD]})
    assert decode_readings_message(message) == [LiveReading("s", "d", None, 1, None, {"n": 1.5})]


def test_non_finite_values_are_left_out() -> None:
    # Python's json reads NaN; nothing downstream (charts, the WebSocket API) could take it.
    message = json.dumps({"readings": [{**GOOD, "metrics": {"n": math.nan}}]})
    assert "NaN" in message
    assert decode_readings_message(message) == []


def test_alert_messages_pass_as_they_are() -> None:
    event = {"v": 1, "event": "raised", "id": 4, "device_id": "a"}
    assert decode_alert_message(json.dumps(event)) == event
    assert decode_alert_message(b"[1]") is None
    assert decode_alert_message(b"\xff") is None


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(lambda value: json.dumps({"readings": [value]}).encode())
)
def test_any_message_decodes_or_is_none_never_raises(message: bytes) -> None:
    readings = decode_readings_message(message)
    if readings is not None:
        encode_readings_message(readings)  # whatever decodes can be sent on (allow_nan=False)
    decode_alert_message(message)
    decode_gateway_health(message)
    decode_device_presence(message)
