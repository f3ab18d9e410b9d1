"""Metric metadata the hub owns, per device type: unit, kind, decimals, display name, normal
range, and the headline metric a device card draws. Data, not code: `device_types.yaml` beside
this module, read once and checked (a mistake in it is a ValueError naming the entry, which
tests/unit/test_metadata.py would show). Types and metrics it does not list have no units."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

import yaml

MetricKind = Literal["gauge", "counter", "flag"]
KINDS: Final = ("gauge", "counter", "flag")


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str  # the metric's key in readings
    kind: MetricKind
    display_name: str
    unit: str = ""
    decimals: int = 2
    low: float = 0.0  # the normal range: a healthy device stays in [low, high]
    high: float = 1.0


@dataclass(frozen=True, slots=True)
class DeviceTypeInfo:
    name: str
    headline: str | None
    metrics: dict[str, MetricInfo]


def _metric(where: str, name: str, raw: Any) -> MetricInfo:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {raw!r}")
    unknown = set(raw) - {"kind", "unit", "decimals", "normal", "name"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    display = raw.get("name")
    if not isinstance(display, str) or not display:
        raise ValueError(f"{where}.name: a display name is required")
    if kind == "flag":
        return MetricInfo(name, "flag", display, decimals=0)
    normal = raw.get("normal")
    if (
        not isinstance(normal, list)
        or len(normal) != 2
        or not all(isinstance(v, int | float) for v in normal)
        or normal[0] > normal[1]
    ):
        raise ValueError(f"{where}.normal: expected [low, high] with low <= high, got {normal!r}")
    decimals = raw.get("decimals", 2)
    if not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise ValueError(f"{where}.decimals: expected 0 to 6, got {decimals!r}")
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise ValueError(f"{where}.unit: expected text, got {unit!r}")
    return MetricInfo(name, kind, display, unit, decimals, float(normal[0]), float(normal[1]))


def parse_device_types(document: Any) -> dict[str, DeviceTypeInfo]:
    """The `device_types` mapping of the YAML document, checked; ValueError names the entry."""
    types = document.get("device_types") if isinstance(document, dict) else None
    if not isinstance(types, dict):
        raise ValueError("device_types: expected a mapping of device type -> its metrics")
    parsed = {}
    for type_name, raw in types.items():
        where = f"device_types.{type_name}"
        metrics = raw.get("metrics") if isinstance(raw, dict) else None
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError(f"{where}.metrics: expected a mapping of metric -> metadata")
        infos = {m: _metric(f"{where}.metrics.{m}", m, spec) for m, spec in metrics.items()}
        headline = raw.get("headline")
        if headline is not None and headline not in infos:
            raise ValueError(f"{where}.headline: {headline!r} is not one of its metrics")
        parsed[type_name] = DeviceTypeInfo(type_name, headline, infos)
    return parsed


@cache
def device_types() -> dict[str, DeviceTypeInfo]:
    """The packaged metadata (read once per process)."""
    text = resources.files("hub.metadata").joinpath("device_types.yaml").read_text("utf-8")
    return parse_device_types(yaml.safe_load(text))


def metric_info(device_type: str | None, metric: str) -> MetricInfo | None:
    """What the hub knows of a type's metric; None for unknown types and metrics."""
    known = device_types().get(device_type or "")
    return known.metrics.get(metric) if known else None


def headline_metric(device_type: str | None) -> str | None:
    known = device_types().get(device_type or "")
    return known.headline if known else None
