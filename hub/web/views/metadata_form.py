"""The metadata editor's form (hub/web/pages/metadata.py) as data: text fields keyed by their
document path (`area`, `metrics.temp_c.unit`, `metrics.temp_c.normal.min`...) to the document the
model checks (hub.metadata.model.parse_document), and a refusal back to the field it names.
Pure: no NiceGUI. An empty field is not set: the layer below (edge, seed, the device's type)
shows through."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hub.metadata.model import MetadataDoc

__all__ = ["DEVICE_FIELDS", "METRIC_FIELDS", "RANGES", "field_of", "form_document", "form_values"]

DEVICE_FIELDS: Final = ("display_name", "area", "line", "machine")
METRIC_FIELDS: Final = ("display_name", "unit", "description")
RANGES: Final = ("normal", "engineering")


def _number(path: str, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}: expected a finite number")
    return value


def form_document(
    values: Mapping[str, str], metrics: Iterable[str], *, device: bool
) -> dict[str, Any]:
    """The admin layer the form describes; ValueError naming the field's path."""
    doc: dict[str, Any] = {}
    if device:
        for name in DEVICE_FIELDS:
            text = values.get(name, "").strip()
            if text:
                doc[name] = text
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        entry: dict[str, Any] = {}
        for name in METRIC_FIELDS:
            text = values.get(f"metrics.{metric}.{name}", "").strip()
            if text:
                entry[name] = text
        for name in RANGES:
            path = f"metrics.{metric}.{name}"
            low = _number(f"{path}.min", values.get(f"{path}.min", ""))
            high = _number(f"{path}.max", values.get(f"{path}.max", ""))
            if (low is None) != (high is None):
                missing = "min" if low is None else "max"
                raise ValueError(f"{path}.{missing}: set both min and max, or neither")
            if low is not None and high is not None:
                entry[name] = [low, high]
        if entry:
            out[metric] = entry
    doc["metrics"] = out
    return doc


def form_values(doc: MetadataDoc) -> dict[str, str]:
    """The form's fields filled from a document (the admin layer, or the effective metadata
    shown as placeholders)."""
    values = {name: getattr(doc, name) or "" for name in DEVICE_FIELDS}
    for metric, meta in doc.metrics.items():
        for name in METRIC_FIELDS:
            values[f"metrics.{metric}.{name}"] = getattr(meta, name) or ""
        for name in RANGES:
            pair = getattr(meta, name)
            values[f"metrics.{metric}.{name}.min"] = "" if pair is None else f"{pair[0]:g}"
            values[f"metrics.{metric}.{name}.max"] = "" if pair is None else f"{pair[1]:g}"
    return values


def field_of(message: str, fields: Iterable[str]) -> str | None:
    """The form field a refusal names (`metrics.t.normal: min 5 is greater...` -> the range's
    min field), or None when it names none of them."""
    path = message.split(":", 1)[0].strip()
    known = set(fields)
    for candidate in (path, f"{path}.min"):
        if candidate in known:
            return candidate
    return None
