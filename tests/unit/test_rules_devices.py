"""Per-device rule overrides (loader and model) and swapping rules in a running engine."""

from __future__ import annotations

import dataclasses

import pytest

from hub.rules import (
    PACKAGED_SOURCE,
    AlertEngine,
    AlertTransition,
    DeviceRules,
    Hysteresis,
    RulesError,
    RuleSet,
    Threshold,
    TypeRules,
    packaged_rules_text,
    parse_layers,
)
from protocol.models import NormalisedReading

PRESS_RAM = "hydraulic_press.ram_pressure_bar.threshold"


def layers(*texts: str) -> RuleSet:
    return parse_layers(
        [(packaged_rules_text(), PACKAGED_SOURCE)]
        + [(text, f"layer{i}.yaml") for i, text in enumerate(texts, 1)]
    )


def rule_of(rules: TypeRules, rule_id: str) -> object:
    return next(r for r in rules.rules if r.id == rule_id)


def test_a_device_override_changes_one_field_over_its_types_rule() -> None:
    rules = layers(
        "devices:\n  press-07:\n    type: hydraulic_press\n"
        "    rules:\n      ram_pressure_bar.threshold: {warn_high: 245}\n"
    )
    own = rules.for_device("press-07", "hydraulic_press")
    typed = rules.for_type("hydraulic_press")
    mine, theirs = rule_of(own, PRESS_RAM), rule_of(typed, PRESS_RAM)
    assert isinstance(mine, Threshold)
    assert isinstance(theirs, Threshold)
    assert mine == dataclasses.replace(theirs, warn_high=245.0)
    # Every other rule of the type is the type's, and so are other devices' rules.
    assert [r for r in own.rules if r.id != PRESS_RAM] == [
        r for r in typed.rules if r.id != PRESS_RAM
    ]
    assert rules.for_device("press-08", "hydraulic_press") is typed


def test_a_device_override_applies_only_while_the_device_reports_its_type() -> None:
    rules = layers(
        "devices:\n  press-07:\n    type: hydraulic_press\n"
        "    rules:\n      ram_pressure_bar.threshold: {enabled: false}\n"
    )
    assert PRESS_RAM not in {r.id for r in rules.for_device("press-07", "hydraulic_press").rules}
    assert rules.for_device("press-07", "conveyor") is rules.for_type("conveyor")


def test_a_device_layer_sits_over_its_type_whatever_the_order_of_the_files() -> None:
    # The device's warn_high from layer 1 survives a later edit of the type's crit_high.
    rules = layers(
        "devices:\n  press-07:\n    type: hydraulic_press\n"
        "    rules:\n      ram_pressure_bar.threshold: {warn_high: 245}\n",
        "types:\n  hydraulic_press:\n    rules:\n"
        "      ram_pressure_bar.threshold: {crit_high: 270}\n",
    )
    mine = rule_of(rules.for_device("press-07", "hydraulic_press"), PRESS_RAM)
    assert isinstance(mine, Threshold)
    assert (mine.warn_high, mine.crit_high) == (245.0, 270.0)


def test_device_offline_and_added_rules() -> None:
    rules = layers(
        "devices:\n  cnc-9:\n    type: cnc_spindle\n    offline: {after_s: 300}\n"
        "    rules:\n      extra.threshold: {kind: threshold, metric: spindle_temp_c, "
        "warn_high: 50}\n"
    )
    own = rules.for_device("cnc-9", "cnc_spindle")
    assert own.offline is not None
    assert own.offline.after_s == 300
    assert own.offline.severity == "critical"  # the rest of the type's offline section
    assert "cnc_spindle.extra.threshold" in {r.id for r in own.rules}


def test_a_device_of_an_unlisted_type_layers_over_the_default_section() -> None:
    rules = layers(
        "devices:\n  pump-1:\n    type: pump\n"
        "    rules:\n      flow.threshold: {kind: threshold, metric: flow, crit_low: 1}\n"
    )
    assert [r.id for r in rules.for_device("pump-1", "pump").rules] == ["default.flow.threshold"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "devices:\n  press-07:\n    rules:\n      ram_pressure_bar.threshold: {warn_high: 1}\n",
            "devices['press-07'].type: a device's overrides name its type",
        ),
        (
            "devices:\n  press-07:\n    type: hydraulic_press\n"
            "    rules:\n      ram_pressure_bar.threshold: {warn_high: 300}\n",
            "layer1.yaml:5: devices['press-07'].rules['ram_pressure_bar.threshold']: "
            "warn_high (300) must be below crit_high (262)",
        ),
        (
            "devices:\n  'bad id!':\n    type: conveyor\n",
            "layer1.yaml:2: devices['bad id!']: a device id is",
        ),
        (
            "devices:\n  c-1:\n    type: Conveyor\n",
            "layer1.yaml:3: devices['c-1'].type: a device type is",
        ),
        (
            "devices:\n  c-1:\n    type: conveyor\n    colour: red\n",
            "layer1.yaml:4: devices['c-1'].colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_device_overrides_are_refused_naming_the_field(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        layers(text)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


# -- swapping rules in a running engine --------------------------------------------------------

SPINDLE = Threshold(
    "cnc_spindle.spindle_temp_c.threshold",
    "spindle_temp_c",
    warn_high=75.0,
    crit_high=85.0,
    hysteresis=Hysteresis(2.0),
    clear_after_s=10.0,
)


def reading(ts_s: int, value: float, device_id: str = "cnc-01") -> NormalisedReading:
    ts = ts_s * 1000
    return NormalisedReading(
        site="s1",
        device_id=device_id,
        type="cnc_spindle",
        ts=ts,
        seq=None,
        metrics={"spindle_temp_c": value},
        gateway_id="gw-1",
        received_ts=ts,
    )


def engine_of(rule: Threshold) -> AlertEngine:
    return AlertEngine(
        RuleSet({"cnc_spindle": TypeRules((rule,))}),
        device_offline_after_s=60,
        gateway_offline_after_s=30,
    )


def kinds(out: list[AlertTransition]) -> list[tuple[str, str]]:
    return [(t.kind, t.severity) for t in out]


def test_a_lowered_limit_raises_on_the_next_reading() -> None:
    engine = engine_of(SPINDLE)
    assert engine.observe(reading(1, 70.0)) == []
    assert (
        engine.replace_rules(
            RuleSet({"cnc_spindle": TypeRules((dataclasses.replace(SPINDLE, warn_high=65.0),))})
        )
        == []
    )
    assert kinds(engine.observe(reading(2, 70.0))) == [("raised", "warning")]


def test_a_raised_limit_keeps_the_open_alert_and_clears_it_by_the_new_rule() -> None:
    engine = engine_of(SPINDLE)
    assert kinds(engine.observe(reading(1, 80.0))) == [("raised", "warning")]
    assert (
        engine.replace_rules(
            RuleSet(
                {
                    "cnc_spindle": TypeRules(
                        (dataclasses.replace(SPINDLE, warn_high=90.0, crit_high=95.0),)
                    )
                }
            )
        )
        == []
    )
    assert [a.severity for a in engine.open_alerts()] == ["warning"]
    # Calm under the new limit, held for clear_after_s as the rule says.
    assert engine.observe(reading(2, 80.0)) == []
    assert kinds(engine.observe(reading(12, 80.0))) == [("cleared", "warning")]


def test_an_unchanged_rule_keeps_its_hold_timer_across_a_reload() -> None:
    other = Threshold("cnc_spindle.other.threshold", "coolant_temp_c", warn_high=30.0)
    engine = AlertEngine(
        RuleSet({"cnc_spindle": TypeRules((SPINDLE, other))}),
        device_offline_after_s=60,
        gateway_offline_after_s=30,
    )
    engine.observe(reading(1, 80.0))
    engine.observe(reading(2, 70.0))  # calm starts at 2 s
    edited = dataclasses.replace(other, warn_high=31.0)
    assert engine.replace_rules(RuleSet({"cnc_spindle": TypeRules((SPINDLE, edited))})) == []
    # Had the spindle rule's state been reset, the calm would start again at 5 s.
    assert kinds(engine.observe(reading(12, 70.0))) == [("cleared", "warning")]


def test_a_disabled_rule_clears_its_open_alert_at_once() -> None:
    engine = engine_of(SPINDLE)
    engine.observe(reading(1, 90.0))
    engine.tick(5_000)
    out = engine.replace_rules(RuleSet({"cnc_spindle": TypeRules(())}))
    assert [(t.kind, t.rule, t.ts) for t in out] == [("cleared", SPINDLE.id, 5_000)]
    assert engine.open_alerts() == []
    assert engine.observe(reading(6, 90.0)) == []


def test_a_device_override_reaches_that_device_only() -> None:
    engine = engine_of(SPINDLE)
    engine.observe(reading(1, 70.0, "cnc-01"))
    engine.observe(reading(1, 70.0, "cnc-02"))
    low = TypeRules((dataclasses.replace(SPINDLE, warn_high=60.0),))
    engine.replace_rules(
        RuleSet(
            {"cnc_spindle": TypeRules((SPINDLE,))},
            devices={"cnc-02": DeviceRules("cnc_spindle", low)},
        )
    )
    assert engine.observe(reading(2, 70.0, "cnc-01")) == []
    assert kinds(engine.observe(reading(2, 70.0, "cnc-02"))) == [("raised", "warning")]
