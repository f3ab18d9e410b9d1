from __future__ import annotations

import dataclasses

import pytest

import hub.rules
from hub.rules import (
    AlertTransition,
    FlagThreshold,
    Flatline,
    Hysteresis,
    Offline,
    RateOfChange,
    RuleSet,
    Threshold,
    TypeRules,
    severity_rank,
)


def test_public_api_is_explicit() -> None:
    exported = set(hub.rules.__all__)
    assert exported == {name for name in dir(hub.rules) if not name.startswith("_")} - {
        "edits",  # imported as hub.rules.edits: the dashboard's edit layer
        "engine",
        "loader",
        "model",
        "runway",
    }
    assert "AlertEngine" in exported
    assert "load_rules" in exported


def test_alert_transition_field_names_are_fixed() -> None:
    # The alert store persists these names: renaming one is a contract change.
    names = [f.name for f in dataclasses.fields(AlertTransition)]
    assert names == [
        "kind",
        "device_id",
        "gateway_id",
        "rule",
        "severity",
        "metric",
        "value",
        "message",
        "ts",
    ]


def test_hysteresis_margin() -> None:
    assert Hysteresis(2.0).margin(85.0) == 2.0
    assert Hysteresis(5.0, percent=True).margin(-200.0) == 10.0
    assert str(Hysteresis(5.0, percent=True)) == "5%"
    assert str(Hysteresis(0.5)) == "0.5"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Hysteresis(-1.0), "hysteresis must be a finite number >= 0"),
        (lambda: Hysteresis(100.0, percent=True), "below 100%"),
        (lambda: Threshold("a.b", "m"), "needs at least one of"),
        (
            lambda: Threshold("a.b", "m", warn_high=90.0, crit_high=85.0),
            "warn_high .* below crit_high",
        ),
        (lambda: Threshold("a.b", "m", warn_low=5.0, crit_low=6.0), "crit_low .* below warn_low"),
        (
            lambda: Threshold("a.b", "m", warn_high=10.0, warn_low=8.0, hysteresis=Hysteresis(1.0)),
            "closer than twice the hysteresis",
        ),
        (lambda: Threshold("a.b", "m", crit_high=float("inf")), "crit_high must be finite"),
        (lambda: Threshold("a.b", "m", crit_high=1.0, clear_after_s=-1.0), "clear_after_s"),
        (lambda: Threshold("A b", "m", crit_high=1.0), "rule id"),
        (lambda: Threshold("a.b", "m", crit_high=1.0, when="Running"), "when 'Running'"),
        (lambda: FlagThreshold("a.b", "m", severity="fatal"), "severity must be"),  # type: ignore[arg-type]
        (lambda: RateOfChange("a.b", "m", 1.0), "exactly one of"),
        (lambda: RateOfChange("a.b", "m", 1.0, window_samples=2, window_s=1.0), "exactly one of"),
        (lambda: RateOfChange("a.b", "m", 1.0, window_samples=1), "at least 2"),
        (lambda: RateOfChange("a.b", "m", 0.0, window_s=10.0), "max_per_s"),
        (lambda: RateOfChange("a.b", "m", 1.0, window_s=10.0, direction="up"), "direction"),  # type: ignore[arg-type]
        (
            lambda: RateOfChange("a.b", "m", 1.0, window_s=10.0, hysteresis=Hysteresis(1.0)),
            "below max_per_s",
        ),
        (lambda: Flatline("a.b", "m", samples=1), "at least 2"),
        (lambda: Offline(after_s=0.0), "after_s"),
        (
            lambda: TypeRules((Flatline("a.b", "m", 3), Flatline("a.b", "n", 3))),
            "duplicate rule id",
        ),
    ],
)
def test_rules_validate_themselves(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_rule_set_lookup() -> None:
    cnc = TypeRules((Flatline("cnc.t.flatline", "t", 30),))
    rules = RuleSet({"cnc": cnc})
    assert rules.for_type("cnc") is cnc
    assert rules.for_type("pump") is rules.default
    assert rules.for_type(None) is rules.default


def test_severity_rank() -> None:
    assert [severity_rank(s) for s in (None, "warning", "critical")] == [0, 1, 2]
