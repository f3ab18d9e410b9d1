"""Device metadata (hub.metadata.model): validation naming the field, and the precedence of
layers (seed < edge < admin; a device's layers over its type's)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.metadata.model import MetadataDoc, MetricMeta, merge, parse_document
from hub.metadata.seed import seed_document


def test_a_full_device_document_round_trips() -> None:
    raw: dict[str, Any] = {
        "display_name": "Press 1",
        "area": "Forming",
        "line": "Line 2",
        "machine": "P-100",
        "metrics": {
            "ram_pressure_bar": {
                "display_name": "Ram pressure",
                "unit": "bar",
                "normal": [0, 250],
                "engineering": {"min": 0, "max": 400},
                "description": "main cylinder",
            }
        },
    }
    doc = parse_document(raw, device=True)
    assert doc.area == "Forming"
    assert doc.metrics["ram_pressure_bar"].engineering == (0.0, 400.0)
    again = parse_document(doc.to_json(), device=True)
    assert again == doc


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"metrics": {"temp_c": {"normal": [5, 1]}}}, "metrics.temp_c.normal"),
        (
            {"metrics": {"temp_c": {"engineering": [0, float("nan")]}}},
            "metrics.temp_c.engineering.max",
        ),
        ({"metrics": {"temp_c": {"normal": [0]}}}, "metrics.temp_c.normal"),
        ({"metrics": {"temp_c": {"normal": [0, 10**400]}}}, "metrics.temp_c.normal.max"),
        ({"metrics": {"temp_c": {"normal": {"min": "0", "max": 1}}}}, "metrics.temp_c.normal.min"),
        ({"metrics": {"Temp C": {"unit": "C"}}}, "metrics.Temp C"),
        ({"metrics": {"a" * 65: {"unit": "C"}}}, "metrics." + "a" * 65),
        ({"metrics": {"temp_c": {"unit": "x" * 33}}}, "metrics.temp_c.unit"),
        ({"metrics": {"temp_c": {"display_name": 7}}}, "metrics.temp_c.display_name"),
        ({"metrics": {"temp_c": {"colour": "red"}}}, "metrics.temp_c"),
        ({"area": "a" * 121}, "area"),
        ({"line": "a\nb"}, "line"),
        ({"metrics": []}, "metrics"),
    ],
)
def test_bad_input_is_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        parse_document(raw, device=True)


def test_a_type_has_no_hierarchy() -> None:
    with pytest.raises(ValueError, match="area"):
        parse_document({"area": "Forming"}, device=False)
    assert parse_document({"metrics": {}}, device=False) == MetadataDoc()


def test_later_layers_win_field_by_field() -> None:
    seed = MetadataDoc(metrics={"t": MetricMeta(display_name="T", unit="°C", normal=(0, 80))})
    edge = MetadataDoc(area="Edge area", metrics={"t": MetricMeta(unit="K")})
    admin = MetadataDoc(area="Admin area", metrics={"t": MetricMeta(display_name="Temp")})
    merged = merge([seed, edge, admin])
    assert merged.area == "Admin area"
    assert merged.metrics["t"] == MetricMeta(display_name="Temp", unit="K", normal=(0, 80))
    assert merge([seed, admin, edge]).area == "Edge area"


def test_the_seed_carries_the_packaged_units_and_ranges() -> None:
    press = seed_document("hydraulic_press")
    assert press.metrics["ram_pressure_bar"].unit == "bar"
    assert press.metrics["ram_pressure_bar"].normal == (0.0, 250.0)
    assert press.metrics["running"].normal is None
    assert seed_document("unknown_type") == MetadataDoc()
