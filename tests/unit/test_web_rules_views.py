"""The rules page's pure helpers (hub.web.views.rules): typed values, changed fields, and which
form field each problem of the rules model belongs to."""

from __future__ import annotations

import pytest

from hub.rules.edits import OFFLINE, EffectiveRule, Scope, Value
from hub.web.views.rules import (
    changed_fields,
    form_fields,
    origin_text,
    parse_scope_key,
    problems_by_field,
    scope_key,
    shown,
    typed,
)


def threshold(**fields: object) -> EffectiveRule:
    values = {"kind": "threshold", "metric": "temp", "warn_high": 75, "crit_high": 85, **fields}
    return EffectiveRule(
        Scope("cnc_spindle"), "temp.threshold", {k: Value(v, "default") for k, v in values.items()}
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("", None), ("  ", None), (None, None), ("70", 70), ("70.5", 70.5), ("70.0", 70.0),
     ("-3", -3), ("5%", "5%"), ("soon", "soon")],
)  # fmt: skip
def test_typed(text: str | None, value: object) -> None:
    assert typed(text) == value
    assert type(typed(text)) is type(value)


def test_shown() -> None:
    assert [shown(v) for v in (None, 70.0, 70.5, "5%", True)] == ["", "70", "70.5", "5%", "true"]


def test_only_changed_fields_go_into_the_edit() -> None:
    rule = threshold()
    assert changed_fields(rule, {"warn_high": "75", "crit_high": "85.0"}, True) == {}
    assert changed_fields(rule, {"warn_high": "70", "warn_low": ""}, True) == {"warn_high": 70}
    assert changed_fields(rule, {"crit_high": ""}, False) == {"crit_high": None, "enabled": False}


def test_form_fields_per_kind() -> None:
    assert form_fields(threshold()) == (
        "warn_high", "crit_high", "warn_low", "crit_low", "hysteresis", "clear_after_s",
    )  # fmt: skip
    assert form_fields(threshold(equals=True, severity="critical")) == ("severity",)
    offline = EffectiveRule(Scope("x"), OFFLINE, {"severity": Value("critical", "default")})
    assert form_fields(offline) == ("after_s", "severity")


def test_problems_go_next_to_the_fields_they_name() -> None:
    problems = [
        "types.cnc_spindle.rules['temp.threshold']: warn_high (95) must be below crit_high (85)",
        "types.cnc_spindle.rules['temp.threshold'].clear_after_s: Input should be a valid number",
        "devices['bad id']: a device id is [A-Za-z0-9_.-]{1,64}",
    ]
    by_field, general = problems_by_field(problems, ("warn_high", "crit_high", "clear_after_s"))
    assert by_field == {
        "warn_high": ["warn_high (95) must be below crit_high (85)"],
        "crit_high": ["warn_high (95) must be below crit_high (85)"],
        "clear_after_s": ["Input should be a valid number"],
    }
    assert general == [problems[2]]


def test_scope_keys_round_trip_and_origins() -> None:
    for scope in (Scope(), Scope("conveyor"), Scope("conveyor", "c-1")):
        assert parse_scope_key(scope_key(scope)) == scope
    rule = threshold()
    rule.fields["warn_high"] = Value(70, "edit")
    rule.fields["crit_high"] = Value(90, "file")
    rule.fields["enabled"] = Value(False, "edit", device=True)
    assert origin_text(rule) == "default; file: crit_high; edit: warn_high; device: enabled"
