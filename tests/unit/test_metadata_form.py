"""The metadata editor's form as data (hub.web.views.metadata_form)."""

from __future__ import annotations

import pytest

from hub.metadata.model import parse_document
from hub.web.views.metadata_form import field_of, form_document, form_values


def test_the_form_becomes_a_document_the_model_accepts_and_back() -> None:
    values = {
        "area": " Forming ",
        "line": "",
        "metrics.temp_c.unit": "K",
        "metrics.temp_c.normal.min": "10",
        "metrics.temp_c.normal.max": "80.5",
        "metrics.speed.display_name": "",
    }
    doc = form_document(values, ["temp_c", "speed"], device=True)
    assert doc == {"area": "Forming", "metrics": {"temp_c": {"unit": "K", "normal": [10.0, 80.5]}}}
    parsed = parse_document(doc, device=True)
    back = form_values(parsed)
    assert back["metrics.temp_c.normal.max"] == "80.5"
    assert back["area"] == "Forming"
    assert form_document(values, ["temp_c"], device=False) == {"metrics": doc["metrics"]}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"metrics.t.normal.min": "ten", "metrics.t.normal.max": "1"}, "metrics.t.normal.min"),
        ({"metrics.t.engineering.min": "1"}, "metrics.t.engineering.max"),
        ({"metrics.t.normal.max": "inf", "metrics.t.normal.min": "1"}, "metrics.t.normal.max"),
    ],
)
def test_bad_numbers_name_the_field(values: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        form_document(values, ["t"], device=True)


def test_a_refusal_finds_its_field() -> None:
    fields = ["area", "metrics.t.normal.min", "metrics.t.normal.max", "metrics.t.unit"]
    assert field_of("metrics.t.normal: min 5 is greater than max 1", fields) == (
        "metrics.t.normal.min"
    )
    assert field_of("metrics.t.normal.max: expected a number", fields) == "metrics.t.normal.max"
    assert field_of("area: at most 120 characters, got 121", fields) == "area"
    assert field_of("metadata: unknown fields ['x']", fields) is None
