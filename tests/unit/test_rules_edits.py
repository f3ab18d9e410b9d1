"""Rule edits as a layer over the defaults and HUB_RULES_FILE (hub.rules.edits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.rules import RulesError, RuleSet, Threshold
from hub.rules.edits import (
    OFFLINE,
    RuleChange,
    Scope,
    Seed,
    apply_changes,
    build_rules,
    diff_documents,
    effective_rules,
    empty_document,
    load_seed,
)

SPINDLE_KEY = "spindle_temp_c.threshold"
SPINDLE_ID = f"cnc_spindle.{SPINDLE_KEY}"


@pytest.fixture
def seed(tmp_path: Path) -> Seed:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"types:\n  cnc_spindle:\n    rules:\n      {SPINDLE_KEY}: {{crit_high: 90}}\n",
        encoding="utf-8",
    )
    return load_seed(path)


def spindle(rules: RuleSet, device_id: str | None = None) -> Threshold:
    section = (
        rules.for_device(device_id, "cnc_spindle") if device_id else rules.for_type("cnc_spindle")
    )
    rule = next(r for r in section.rules if r.id == SPINDLE_ID)
    assert isinstance(rule, Threshold)
    return rule


def test_an_edit_layers_over_the_file_over_the_defaults(seed: Seed) -> None:
    edits = apply_changes(
        empty_document(),
        [RuleChange(SPINDLE_KEY, {"warn_high": 70, "clear_after_s": 5}, "cnc_spindle")],
    )
    rule = spindle(build_rules(seed, edits))
    assert (rule.warn_high, rule.crit_high, rule.clear_after_s) == (70, 90, 5)
    assert rule.crit_low == 5  # from the defaults, untouched


def test_apply_changes_leaves_its_input_alone_and_merges_fields() -> None:
    first = apply_changes(
        empty_document(), [RuleChange(SPINDLE_KEY, {"warn_high": 70}, "cnc_spindle")]
    )
    second = apply_changes(first, [RuleChange(SPINDLE_KEY, {"hysteresis": "5%"}, "cnc_spindle")])
    assert first["types"]["cnc_spindle"]["rules"][SPINDLE_KEY] == {"warn_high": 70}
    assert second["types"]["cnc_spindle"]["rules"][SPINDLE_KEY] == {
        "warn_high": 70,
        "hysteresis": "5%",
    }


def test_device_and_offline_changes() -> None:
    edits = apply_changes(
        empty_document(),
        [
            RuleChange(SPINDLE_KEY, {"enabled": False}, "cnc_spindle", "cnc-7"),
            RuleChange(OFFLINE, {"after_s": 300}, "cnc_spindle"),
        ],
    )
    assert edits["devices"]["cnc-7"] == {
        "type": "cnc_spindle",
        "rules": {SPINDLE_KEY: {"enabled": False}},
    }
    rules = build_rules(load_seed(), edits)
    assert SPINDLE_ID not in {r.id for r in rules.for_device("cnc-7", "cnc_spindle").rules}
    offline = rules.for_type("cnc_spindle").offline
    assert offline is not None
    assert offline.after_s == 300


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"warn_high": 95},
            "types.cnc_spindle.rules['spindle_temp_c.threshold']: warn_high (95) must be below "
            "crit_high (90)",
        ),
        (
            {"clear_after_s": "soon"},
            "types.cnc_spindle.rules['spindle_temp_c.threshold'].clear_after_s: Input should be "
            "a valid number",
        ),
        (
            {"hysteresis": "lots"},
            "types.cnc_spindle.rules['spindle_temp_c.threshold']: hysteresis must be a number",
        ),
        (
            {"colour": "red"},
            "types.cnc_spindle.rules['spindle_temp_c.threshold'].colour: Extra inputs are not "
            "permitted",
        ),
    ],
)
def test_a_bad_edit_is_refused_naming_the_field(
    seed: Seed, fields: dict[str, object], expected: str
) -> None:
    edits = apply_changes(empty_document(), [RuleChange(SPINDLE_KEY, fields, "cnc_spindle")])
    with pytest.raises(RulesError) as info:
        build_rules(seed, edits)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (RuleChange(SPINDLE_KEY, {}, "cnc_spindle"), "fields: give at least one"),
        (RuleChange(SPINDLE_KEY, {"kind": "flatline"}, "cnc_spindle"), "fields.kind"),
        (RuleChange(SPINDLE_KEY, {"warn_high": 1}, None, "cnc-7"), "device_type"),
    ],
)
def test_changes_that_cannot_be_edits_are_refused(change: RuleChange, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_changes(empty_document(), [change])


def test_effective_rules_say_where_each_value_comes_from(seed: Seed) -> None:
    edits = apply_changes(
        empty_document(),
        [
            RuleChange(SPINDLE_KEY, {"warn_high": 70}, "cnc_spindle"),
            RuleChange(SPINDLE_KEY, {"warn_high": 60}, "cnc_spindle", "cnc-7"),
        ],
    )
    rules = {(r.scope, r.key): r for r in effective_rules(seed, edits)}
    typed = rules[(Scope("cnc_spindle"), SPINDLE_KEY)]
    assert typed.rule_id == SPINDLE_ID
    assert {n: (v.value, v.origin) for n, v in typed.fields.items() if n != "metric"} == {
        "kind": ("threshold", "default"),
        "warn_high": (70, "edit"),
        "crit_high": (90, "file"),
        "crit_low": (5, "default"),
        "hysteresis": (2, "default"),
        "clear_after_s": (30, "default"),
    }
    own = rules[(Scope("cnc_spindle", "cnc-7"), SPINDLE_KEY)]
    assert (own.fields["warn_high"].value, own.fields["warn_high"].device) == (60, True)
    assert (own.fields["crit_high"].origin, own.fields["crit_high"].device) == ("file", False)
    assert rules[(Scope("cnc_spindle"), OFFLINE)].fields["severity"].value == "critical"


def test_effective_rules_list_every_packaged_rule() -> None:
    seed = load_seed()
    listed = {r.rule_id for r in effective_rules(seed, empty_document()) if r.key != OFFLINE}
    built = build_rules(seed, empty_document())
    assert listed == {r.id for t in built.types.values() for r in t.rules}


def test_diff_names_rule_field_old_and_new(seed: Seed) -> None:
    old = apply_changes(
        empty_document(), [RuleChange(SPINDLE_KEY, {"warn_high": 70}, "cnc_spindle")]
    )
    new = apply_changes(
        old,
        [
            RuleChange(SPINDLE_KEY, {"warn_high": 72, "crit_low": None}, "cnc_spindle"),
            RuleChange("jammed.threshold", {"enabled": False}, "conveyor"),
        ],
    )
    assert [str(d) for d in diff_documents(seed, old, new)] == [
        "cnc_spindle spindle_temp_c.threshold: crit_low 5 -> (unset)",
        "cnc_spindle spindle_temp_c.threshold: warn_high 70 -> 72",
        "conveyor jammed.threshold: enabled (unset) -> false",
    ]
    assert diff_documents(seed, new, new) == []
    # Restating the value the file gives changes nothing that applies.
    same = apply_changes(
        empty_document(), [RuleChange(SPINDLE_KEY, {"crit_high": 90}, "cnc_spindle")]
    )
    assert diff_documents(seed, empty_document(), same) == []


def test_a_device_diff_shows_only_what_its_own_override_changes(seed: Seed) -> None:
    old = empty_document()
    new = apply_changes(
        old,
        [
            RuleChange(SPINDLE_KEY, {"warn_high": 70}, "cnc_spindle"),
            RuleChange(SPINDLE_KEY, {"crit_high": 88}, "cnc_spindle", "cnc-7"),
        ],
    )
    assert [str(d) for d in diff_documents(seed, old, new)] == [
        "cnc_spindle spindle_temp_c.threshold: warn_high 75 -> 70",
        "device cnc-7 (cnc_spindle) spindle_temp_c.threshold: crit_high 90 -> 88",
    ]


def test_a_bad_rules_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("types:\n  conveyor: [oops\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"rules.yaml:\d+:\d+: invalid YAML"):
        load_seed(path)
    with pytest.raises(RulesError, match="cannot read"):
        load_seed(tmp_path / "missing.yaml")
