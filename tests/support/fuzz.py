"""Hypothesis strategies for hostile input: the values that broke the hub once (±1e308, dates
past year 9999 after their offset), and extreme floats, integers past 64 bits, long strings,
NUL and control characters, markup, wrong types, anywhere a device or a topic could put them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from protocol import encode
from tests.support.readings import make_reading

T0 = 1_764_268_800_000

EXTREME_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 1e15, -1e15, 1.0000000000000002e15]
    ),
)
BIG_INTS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), 253_402_300_799_999, 253_402_300_800_000]),
)
NASTY_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=20),  # NUL and control chars
    st.sampled_from(
        ["", "\x00", "a\x00b", "<script>x</script>", 'x" onclick="y', "a" * 65, "a" * 5000, "Ⅻ"]
    ),
)
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# RFC 3339 strings whose wall time is valid everywhere but whose instant may fall before 1970
# or after year 9999 in UTC once the offset is applied.
DATE_STRINGS = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    OFFSETS,
)
# Around T0 (where the tests put the receiving clock) as often as anywhere else.
NEAR_T0 = st.integers(min_value=T0 - 8 * 86_400_000, max_value=T0 + 2 * 3_600_000)
TIMESTAMPS = st.one_of(
    st.none(), NEAR_T0, NEAR_T0.map(str), BIG_INTS, DATE_STRINGS, NASTY_TEXT, EXTREME_FLOATS
)
SCALARS = st.one_of(st.none(), st.booleans(), EXTREME_FLOATS, BIG_INTS, NASTY_TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3),
    max_leaves=8,
)
# Mostly well-formed names and numbers, so that hostile values also meet the paths behind
# validation, not only its first check.
VALID_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True)
METRIC_NAMES = st.integers(0, 9).flatmap(lambda n: NASTY_TEXT if n == 0 else VALID_NAMES)
METRIC_VALUES = st.integers(0, 9).flatmap(
    lambda n: (
        JSON_VALUES
        if n == 0
        else st.booleans()
        if n == 1
        else EXTREME_FLOATS | BIG_INTS
        if n < 5
        else st.floats(min_value=-1e6, max_value=1e6)  # plant-sized
    )
)


def dumps(value: object) -> bytes:
    """JSON as a careless or hostile producer writes it: NaN and Infinity included."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def device_payloads(draw: st.DrawFn) -> bytes:
    """A telemetry payload as a device might publish it, any field possibly hostile."""
    body: dict[str, Any] = {
        "metrics": draw(st.dictionaries(METRIC_NAMES, METRIC_VALUES, min_size=1, max_size=4))
    }
    if draw(st.booleans()):
        body["ts"] = draw(TIMESTAMPS)
    if draw(st.booleans()):
        body["seq"] = draw(st.one_of(BIG_INTS, SCALARS))
    if draw(st.booleans()):
        body["type"] = draw(st.one_of(NASTY_TEXT, SCALARS))
    return dumps(body)


@st.composite
def status_payloads(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {"state": draw(st.sampled_from(["online", "offline"]) | NASTY_TEXT)}
    if draw(st.booleans()):
        body["ts"] = draw(TIMESTAMPS)
    return dumps(body)


def valid_reading(device_id: str = "cnc-1", ts: int = T0) -> dict[str, Any]:
    reading = make_reading(
        device_id, ts, {"spindle_temp_c": 61.2, "running": True}, seq=1, type="cnc_spindle"
    )
    body: dict[str, Any] = json.loads(encode(reading))
    return body


@st.composite
def hostile_variants(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A Kafka record value (a valid `base`) with up to two fields replaced by something
    hostile, as a producer that is not our edge could write it."""
    body = dict(base)
    for field in draw(st.lists(st.sampled_from(sorted(body)), min_size=0, max_size=2)):
        if field == "metrics":
            body[field] = draw(
                st.dictionaries(METRIC_NAMES, METRIC_VALUES, min_size=1, max_size=4) | JSON_VALUES
            )
        elif field in ("ts", "received_ts"):
            body[field] = draw(TIMESTAMPS)
        else:
            body[field] = draw(st.one_of(NASTY_TEXT, SCALARS, JSON_VALUES))
    return dumps(body)


def kafka_readings(device_id: str = "cnc-1", ts: int = T0) -> st.SearchStrategy[bytes]:
    return hostile_variants(valid_reading(device_id, ts))
