"""One Sparkplug metric's value -> a reading value (float or bool), or the reason it is skipped.
Pure. Signed integers travel as two's complement in the unsigned field of their width (spec
6.4.16); they are read back at that width."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from protocol.models import MAX_METRIC_MAGNITUDE

_SIGNED_BITS: Final[dict[int, int]] = {pb.Int8: 8, pb.Int16: 16, pb.Int32: 32, pb.Int64: 64}
_UNSIGNED: Final[frozenset[int]] = frozenset({pb.UInt8, pb.UInt16, pb.UInt32, pb.UInt64})
_FLOATS: Final[frozenset[int]] = frozenset({pb.Float, pb.Double})
INT_FIELDS: Final = frozenset({"int_value", "long_value"})
FLOAT_FIELDS: Final = frozenset({"float_value", "double_value"})
# The datatypes that become readings.
READING_TYPES: Final[frozenset[int]] = frozenset({*_SIGNED_BITS, *_UNSIGNED, *_FLOATS, pb.Boolean})
# Skip reasons by type (a reading holds numbers and booleans only).
_SKIPPED_TYPES: Final[dict[int, str]] = {
    pb.String: "string",
    pb.Text: "string",
    pb.UUID: "string",
    pb.DataSet: "dataset",
    pb.Template: "template",
}

DATATYPE_NAMES: Final[dict[int, str]] = {int(v): str(n) for n, v in pb.DataType.items()}


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


def type_name(datatype: int) -> str:
    return DATATYPE_NAMES.get(datatype, f"type_{datatype}")


def from_twos_complement(raw: int, datatype: int) -> int:
    """A signed integer type's value, read back at its width; other types' unchanged."""
    bits = _SIGNED_BITS.get(datatype)
    if bits is None:
        return raw
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def reading_value(metric: pb.Payload.Metric, datatype: int) -> float | bool | Skip:
    """`datatype` is the birth's (a DATA metric may omit it)."""
    if metric.is_null:
        return Skip("null_value")
    if datatype in _SKIPPED_TYPES:
        return Skip(_SKIPPED_TYPES[datatype])
    field = metric.WhichOneof("value")
    if field is None:
        return Skip("no_value")
    raw = getattr(metric, field)
    if datatype == pb.Boolean:
        return raw if field == "boolean_value" else Skip("value_type_mismatch")
    if datatype in _SIGNED_BITS or datatype in _UNSIGNED:
        if field not in INT_FIELDS:
            return Skip("value_type_mismatch")
        return _bounded(float(from_twos_complement(raw, datatype)))
    if datatype in _FLOATS:
        return _bounded(raw) if field in FLOAT_FIELDS else Skip("value_type_mismatch")
    return Skip("unsupported_type")


def _bounded(value: float) -> float | Skip:
    if not math.isfinite(value):
        return Skip("non_finite_number")
    if abs(value) > MAX_METRIC_MAGNITUDE:
        return Skip("value_out_of_range")
    return value
