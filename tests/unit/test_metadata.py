"""The hub's metric metadata (hub/metadata/device_types.yaml): it describes the five simulated
types as the simulators produce them, and a mistake in it is refused naming the entry."""

from __future__ import annotations

from typing import Any

import pytest

from edge_gateway.simulators.catalog import METRICS
from hub.metadata import device_types, headline_metric, metric_info, parse_device_types


def test_the_seeded_types_match_what_the_simulators_send() -> None:
    known = device_types()
    assert set(known) == set(METRICS)
    for device_type, specs in METRICS.items():
        assert set(known[device_type].metrics) == {s.name for s in specs}, device_type
        for spec in specs:
            info = metric_info(device_type, spec.name)
            assert info is not None
            assert info.kind == spec.kind, (device_type, spec.name)
            if spec.kind != "flag":
                got = (info.unit, info.decimals, info.low, info.high)
                assert got == (spec.unit, spec.decimals, spec.low, spec.high), spec.name
        assert headline_metric(device_type) in known[device_type].metrics


def test_unknown_types_and_metrics_have_no_metadata() -> None:
    assert metric_info("lathe_from_another_vendor", "spindle_temp_c") is None
    assert metric_info("cnc_spindle", "not_a_metric") is None
    assert metric_info(None, "running") is None
    assert headline_metric("lathe_from_another_vendor") is None


def _doc(metric: Any, headline: str | None = None) -> dict[str, Any]:
    return {"device_types": {"oven": {"headline": headline, "metrics": {"temp_c": metric}}}}


GOOD = {"kind": "gauge", "unit": "°C", "decimals": 1, "normal": [0, 300], "name": "Temperature"}


def test_a_good_document_parses() -> None:
    (oven,) = parse_device_types(_doc(GOOD, headline="temp_c")).values()
    info = oven.metrics["temp_c"]
    assert (info.display_name, info.unit, info.decimals, info.low, info.high) == (
        "Temperature", "°C", 1, 0.0, 300.0,
    )  # fmt: skip
    assert oven.headline == "temp_c"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "device_types: expected a mapping"),
        ({"device_types": {"oven": {"metrics": {}}}}, "device_types.oven.metrics"),
        (_doc({**GOOD, "kind": "histogram"}), r"temp_c.kind: 'histogram' is not one of"),
        (_doc({**GOOD, "normal": [5, 1]}), r"temp_c.normal: expected \[low, high\]"),
        (_doc({**GOOD, "normal": "0-300"}), r"temp_c.normal"),
        (_doc({**GOOD, "decimals": 12}), r"temp_c.decimals: expected 0 to 6"),
        (_doc({**GOOD, "name": ""}), r"temp_c.name: a display name is required"),
        (_doc({**GOOD, "colour": "red"}), r"temp_c: unknown keys \['colour'\]"),
        (_doc(GOOD, headline="pressure"), r"oven.headline: 'pressure' is not one of its"),
    ],
)
def test_a_mistake_is_refused_naming_the_entry(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_device_types(document)
