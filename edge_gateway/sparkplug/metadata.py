"""A Sparkplug birth certificate's metrics -> the device metadata the hub keeps
(protocol.device_metadata, docs/device-metadata.md). Pure.

Per numeric or boolean metric (control metrics left out), keyed by its normalised name: the
original name as `source_name`, and from its PropertySet, with keys matched in any case, the
conventional Ignition/Sparkplug tag properties:

* unit: `engUnit` (also `engUnits`, `unit`, `units`), a string;
* engineering range: `engLow` and `engHigh` together, numbers with low <= high;
* description: `description` (also `documentation`), a string.

A metric whose properties are unusable (a wrong type, one end of a range, low > high, a unit
too long...) gets no metadata at all, with a `Problem` naming the reason: the birth's readings
are not affected."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import ValidationError

from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.values import (
    FLOAT_FIELDS,
    INT_FIELDS,
    READING_TYPES,
    from_twos_complement,
)
from protocol.device_metadata import DEVICE_METADATA_MAX_METRICS, MetricMetadata

UNIT_KEYS: Final = ("engunit", "engunits", "unit", "units")
LOW_KEYS: Final = ("englow",)
HIGH_KEYS: Final = ("enghigh",)
DESCRIPTION_KEYS: Final = ("description", "documentation")

BAD_PROPERTY: Final = "metadata_bad_property"
BAD_RANGE: Final = "metadata_bad_range"
TOO_MANY: Final = "metadata_too_many_metrics"


@dataclass(frozen=True, slots=True)
class Problem:
    metric: str  # the original name
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class BirthMetadata:
    metrics: dict[str, dict[str, object]]  # normalised name -> MetricMetadata fields
    problems: list[Problem]


class _Bad(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _properties(metric: pb.Payload.Metric) -> dict[str, pb.Payload.PropertyValue]:
    """Lower-cased key -> value; the first of keys that differ only in case wins."""
    props = metric.properties
    out: dict[str, pb.Payload.PropertyValue] = {}
    for key, value in zip(props.keys, props.values, strict=False):
        out.setdefault(key.lower(), value)
    return out


def _find(
    props: Mapping[str, pb.Payload.PropertyValue], keys: Iterable[str]
) -> tuple[str, pb.Payload.PropertyValue] | None:
    for key in keys:
        value = props.get(key)
        if value is not None and not value.is_null:
            return key, value
    return None


def _string(found: tuple[str, pb.Payload.PropertyValue] | None) -> str | None:
    if found is None:
        return None
    key, value = found
    if value.WhichOneof("value") != "string_value":
        raise _Bad(BAD_PROPERTY, f"property {key}: a string expected, got {_kind(value)}")
    text = str(value.string_value)
    return text or None


def _number(found: tuple[str, pb.Payload.PropertyValue] | None) -> float | None:
    if found is None:
        return None
    key, value = found
    field = value.WhichOneof("value")
    if field in INT_FIELDS:
        return float(from_twos_complement(int(getattr(value, field)), value.type))
    if field in FLOAT_FIELDS:
        number = float(getattr(value, field))
        if not math.isfinite(number):
            raise _Bad(BAD_PROPERTY, f"property {key}: {number} is not a finite number")
        return number
    raise _Bad(BAD_PROPERTY, f"property {key}: a number expected, got {_kind(value)}")


def _kind(value: pb.Payload.PropertyValue) -> str:
    return (value.WhichOneof("value") or "no value").removesuffix("_value")


def unit_of(metric: pb.Payload.Metric) -> str | None:
    """The metric's unit property, if it is a string (None otherwise)."""
    try:
        return _string(_find(_properties(metric), UNIT_KEYS))
    except _Bad:
        return None


def _metric_metadata(metric: pb.Payload.Metric) -> dict[str, object]:
    """One metric's metadata fields (source_name, unit, engineering, description); raises
    `_Bad` with the reason."""
    props = _properties(metric)
    out: dict[str, object] = {"source_name": metric.name}
    unit = _string(_find(props, UNIT_KEYS))
    if unit is not None:
        out["unit"] = unit
    description = _string(_find(props, DESCRIPTION_KEYS))
    if description is not None:
        out["description"] = description
    low, high = _number(_find(props, LOW_KEYS)), _number(_find(props, HIGH_KEYS))
    if (low is None) != (high is None):
        missing = "engHigh" if high is None else "engLow"
        raise _Bad(BAD_RANGE, f"{missing} missing: a range needs engLow and engHigh")
    if low is not None and high is not None:
        if low > high:
            raise _Bad(BAD_RANGE, f"engLow {low:g} is greater than engHigh {high:g}")
        out["engineering"] = [low, high]
    try:  # the wire model's limits (unit length, control characters, magnitudes)
        MetricMetadata.model_validate(out)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "metric"
        raise _Bad(BAD_PROPERTY, f"{where}: {first['msg']}") from None
    return out


def birth_metadata(
    metrics: Iterable[pb.Payload.Metric],
    normalised: Mapping[str, str],
    *,
    is_control: Callable[[str], bool],
) -> BirthMetadata:
    """The metadata of a birth's numeric and boolean metrics (`normalised`: original ->
    normalised name, as the readings use them)."""
    found: dict[str, dict[str, object]] = {}
    problems: list[Problem] = []
    for metric in metrics:
        if not metric.name or is_control(metric.name) or metric.datatype not in READING_TYPES:
            continue
        try:
            found[normalised[metric.name]] = _metric_metadata(metric)
        except _Bad as exc:
            problems.append(Problem(metric.name, exc.reason, str(exc)))
    if len(found) > DEVICE_METADATA_MAX_METRICS:
        kept = sorted(found)[:DEVICE_METADATA_MAX_METRICS]
        detail = f"{len(found)} metrics, the first {DEVICE_METADATA_MAX_METRICS} by name kept"
        problems.append(Problem("*", TOO_MANY, detail))
        found = {name: found[name] for name in kept}
    return BirthMetadata(found, problems)
