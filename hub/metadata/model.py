"""Device metadata and the asset hierarchy (issue 14, item 5): pure model, validation and the
precedence rules. No I/O: the stores keep documents, this module checks and layers them.

A *document* describes one device type or one device as it came from one source:

    {"display_name": "Press 1", "area": "Forming", "line": "Line 2", "machine": "P-100",
     "metrics": {"ram_pressure_bar": {"display_name": "Ram pressure", "unit": "bar",
                 "normal": [0, 250], "engineering": [0, 400], "description": "..."}}}

Every field is optional; a field a document leaves out is taken from a lower layer. The hierarchy
fields (area, line, machine) and the device display name only exist for devices. Layers, lowest
first: the seed (hub/metadata/device_types.yaml and the simulators' catalogue), what the edge
reported (Sparkplug births, connector configuration), then admin edits; and a device's own layers
win over its type's (a device's edge report beats its type's admin edit: it is more specific).
A range is one field: a layer sets both ends or neither, so a merged range is always consistent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

__all__ = [
    "ADMIN",
    "EDGE",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "METRIC_NAME",
    "SEED",
    "SOURCES",
    "MetadataDoc",
    "MetricMeta",
    "Source",
    "merge",
    "parse_document",
]

Source = Literal["seed", "edge", "admin"]
SEED: Final = "seed"
EDGE: Final = "edge"
ADMIN: Final = "admin"
SOURCES: Final[tuple[Source, ...]] = ("seed", "edge", "admin")  # lowest precedence first

METRIC_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_NAME: Final = 120  # display names and hierarchy names
MAX_UNIT: Final = 32
MAX_DESCRIPTION: Final = 1000
MAX_SOURCE_NAME: Final = 256
MAX_METRICS: Final = 500
_METRIC_FIELDS: Final = (
    "display_name",
    "unit",
    "normal",
    "engineering",
    "description",
    "source_name",
)

Range = tuple[float, float]


@dataclass(frozen=True, slots=True)
class MetricMeta:
    display_name: str | None = None
    unit: str | None = None
    normal: Range | None = None
    engineering: Range | None = None
    description: str | None = None
    source_name: str | None = None  # the name at the source (a Sparkplug metric's), if renamed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("display_name", "unit", "description", "source_name"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("normal", "engineering"):
            value = getattr(self, key)
            if value is not None:
                out[key] = [value[0], value[1]]
        return out


@dataclass(frozen=True, slots=True)
class MetadataDoc:
    display_name: str | None = None
    area: str | None = None
    line: str | None = None
    machine: str | None = None
    metrics: dict[str, MetricMeta] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("display_name", "area", "line", "machine"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["metrics"] = {name: m.to_json() for name, m in sorted(self.metrics.items())}
        return out


def _text(where: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{where}: at most {limit} characters, got {len(value)}")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{where}: control characters are not allowed")
    return value or None  # an empty string clears the field at this layer


def _range(where: str, value: Any) -> Range | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value.get("min"), value.get("max")]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{where}: expected [min, max]")
    ends = []
    for end, v in (("min", value[0]), ("max", value[1])):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"{where}.{end}: expected a finite number, got {v!r}")
        try:
            number = float(v)  # an int too large for a float overflows
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValueError(f"{where}.{end}: expected a finite number")
        ends.append(number)
    low, high = ends
    if low > high:
        raise ValueError(f"{where}: min {low:g} is greater than max {high:g}")
    return (low, high)


def _metric(where: str, raw: Any) -> MetricMeta:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = set(raw) - set(_METRIC_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    return MetricMeta(
        display_name=_text(f"{where}.display_name", raw.get("display_name"), MAX_NAME),
        unit=_text(f"{where}.unit", raw.get("unit"), MAX_UNIT),
        normal=_range(f"{where}.normal", raw.get("normal")),
        engineering=_range(f"{where}.engineering", raw.get("engineering")),
        description=_text(f"{where}.description", raw.get("description"), MAX_DESCRIPTION),
        source_name=_text(f"{where}.source_name", raw.get("source_name"), MAX_SOURCE_NAME),
    )


def parse_document(raw: Any, *, device: bool) -> MetadataDoc:
    """A checked document, or ValueError naming the field; `device` allows the device-only
    fields (display name and the hierarchy)."""
    if not isinstance(raw, dict):
        raise ValueError("metadata: expected an object")
    allowed = {"metrics"} | ({"display_name", "area", "line", "machine"} if device else set())
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"metadata: unknown fields {sorted(unknown)}")
    metrics_raw = raw.get("metrics", {})
    if not isinstance(metrics_raw, dict):
        raise ValueError("metrics: expected an object of metric name -> metadata")
    if len(metrics_raw) > MAX_METRICS:
        raise ValueError(f"metrics: at most {MAX_METRICS} metrics")
    metrics = {}
    for name, spec in metrics_raw.items():
        if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
            raise ValueError(f"metrics.{name}: metric names are [a-z][a-z0-9_]{{0,63}}")
        metrics[name] = _metric(f"metrics.{name}", spec)
    hierarchy = {
        key: _text(key, raw.get(key), MAX_NAME)
        for key in ("display_name", "area", "line", "machine")
    }
    return MetadataDoc(metrics=metrics, **hierarchy)


def _overlay_metric(low: MetricMeta, high: MetricMeta) -> MetricMeta:
    return replace(
        low,
        **{key: getattr(high, key) for key in _METRIC_FIELDS if getattr(high, key) is not None},
    )


def merge(layers: list[MetadataDoc]) -> MetadataDoc:
    """The effective metadata of `layers`, lowest precedence first: per field, the last layer
    that sets it wins."""
    result = MetadataDoc()
    for layer in layers:
        metrics = dict(result.metrics)
        for name, meta in layer.metrics.items():
            metrics[name] = _overlay_metric(metrics.get(name, MetricMeta()), meta)
        result = MetadataDoc(
            display_name=layer.display_name or result.display_name,
            area=layer.area or result.area,
            line=layer.line or result.line,
            machine=layer.machine or result.machine,
            metrics=metrics,
        )
    return result
