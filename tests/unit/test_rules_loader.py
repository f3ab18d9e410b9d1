from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_gateway.simulators.catalog import ALL_TYPES, METRICS, NORMAL_RANGES
from edge_gateway.simulators.device import SimulatedDevice
from hub.rules import (
    PACKAGED_SOURCE,
    AlertEngine,
    AlertTransition,
    FlagThreshold,
    Flatline,
    Offline,
    RateOfChange,
    RulesError,
    RuleSet,
    Threshold,
    load_rules,
    packaged_rules_text,
    parse_rules,
)
from protocol.models import NormalisedReading

# A Tuesday, 10:00 UTC: the early shift keeps every machine busy.
BUSY_MORNING_MS = 1_764_669_600_000


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def pump_rule(body: str) -> str:
    return f"types:\n  pump:\n    rules:\n      a: {{{body}}}\n"


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        load_rules(write(tmp_path, text))
    return info.value.problems


# -- packaged defaults -----------------------------------------------------------------------


def test_defaults_cover_the_five_simulator_types_with_real_metrics() -> None:
    rules = load_rules()
    assert set(rules.types) == set(ALL_TYPES)
    assert rules.default.rules == ()
    assert rules.default.offline == Offline(after_s=None, severity="critical")
    for device_type, type_rules in rules.types.items():
        flags = {m.name for m in METRICS[device_type] if m.kind == "flag"}
        numeric = set(NORMAL_RANGES[device_type])
        assert type_rules.offline == rules.default.offline
        assert type_rules.rules, device_type
        for rule in type_rules.rules:
            assert rule.id.startswith(f"{device_type}.{rule.metric}."), rule.id
            if isinstance(rule, FlagThreshold):
                assert rule.metric in flags, rule.id
            else:
                assert rule.metric in numeric, rule.id
            if rule.when is not None:
                assert rule.when in flags, rule.id


def test_default_thresholds_put_critical_beyond_and_warning_within_the_normal_range() -> None:
    rules = load_rules()
    for device_type, type_rules in rules.types.items():
        for rule in type_rules.rules:
            if not isinstance(rule, Threshold):
                continue
            low, high = NORMAL_RANGES[device_type][rule.metric]
            # Limits compare strictly: a critical limit at the range's edge (the ISO class
            # limit of a cleanroom) alerts only beyond it.
            if rule.crit_high is not None:
                assert rule.crit_high >= high, rule.id
            if rule.crit_low is not None:
                assert rule.crit_low < low, rule.id
            for warn in (rule.warn_high, rule.warn_low):
                if warn is not None:
                    assert low <= warn <= high, rule.id
            # A critical limit beyond the range is far enough out that every normal value
            # clears it (a zero floor must not hold a "negative reading" alert open).
            if rule.crit_high is not None and rule.crit_high > high:
                assert rule.crit_high - rule.hysteresis.margin(rule.crit_high) >= high, rule.id
            if rule.crit_low is not None:
                assert rule.crit_low + rule.hysteresis.margin(rule.crit_low) <= low, rule.id


def test_the_defaults_name_the_rules_the_brief_asks_for() -> None:
    rules = load_rules()
    by_id = {r.id: r for t in rules.types.values() for r in t.rules}
    assert by_id["conveyor.jammed.threshold"] == FlagThreshold(
        "conveyor.jammed.threshold", "jammed", equals=True, severity="critical"
    )
    flatline = by_id["cnc_spindle.spindle_temp_c.flatline"]
    assert isinstance(flatline, Flatline)
    assert (flatline.samples, flatline.when) == (30, "running")
    rate = by_id["cnc_spindle.spindle_temp_c.rate"]
    assert isinstance(rate, RateOfChange)
    assert (rate.max_per_s, rate.direction) == (2.0, "rising")


def to_reading(device: SimulatedDevice, now_ms: int) -> NormalisedReading | None:
    payload = device.next_payload(now_ms)
    if payload is None:
        return None
    metrics = {k: v if isinstance(v, bool) else float(v) for k, v in payload["metrics"].items()}
    return NormalisedReading(
        site="s1",
        device_id=device.device_id,
        type=device.device_type,
        ts=now_ms,
        seq=payload["seq"],
        metrics=metrics,
        gateway_id="gw-1",
        received_ts=now_ms,
    )


def simulate(
    devices: list[SimulatedDevice], engine: AlertEngine, start_ms: int, seconds: int
) -> list[AlertTransition]:
    out: list[AlertTransition] = []
    for second in range(seconds):
        now = start_ms + second * 1000
        for device in devices:
            item = to_reading(device, now)
            if item is not None:
                out += engine.observe(item)
        out += engine.tick(now)
    return out


def fleet(seed: int) -> list[SimulatedDevice]:
    return [
        SimulatedDevice(
            f"{device_type}-01",
            device_type,
            model_rng=random.Random(seed),
            anomaly_rng=random.Random(seed + 1),
        )
        for device_type in ALL_TYPES
    ]


def test_healthy_simulated_machines_raise_nothing_with_the_defaults() -> None:
    engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
    out = simulate(fleet(seed=3), engine, BUSY_MORNING_MS, 2 * 3600)
    # A jam is part of a conveyor's normal life (and worth its alert); nothing else is.
    assert [(t.kind, t.rule) for t in out] == [
        ("raised", "conveyor.jammed.threshold"),
        ("cleared", "conveyor.jammed.threshold"),
    ]


def test_injected_faults_raise_one_alert_each() -> None:
    engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
    devices = fleet(seed=5)
    cnc, press = devices[0], devices[1]
    simulate(devices, engine, BUSY_MORNING_MS, 600)
    start = BUSY_MORNING_MS + 600_000
    assert cnc.machine.step(start)["running"] is True
    cnc.inject("stuck", start, metric="spindle_temp_c", samples=120)
    press.inject("dropout", start, duration_ms=300_000)
    out = simulate(devices, engine, start + 1000, 600)
    assert [(t.kind, t.device_id, t.rule) for t in out] == [
        ("raised", "cnc_spindle-01", "cnc_spindle.spindle_temp_c.flatline"),
        ("raised", "hydraulic_press-01", "device_offline"),
        ("cleared", "cnc_spindle-01", "cnc_spindle.spindle_temp_c.flatline"),
        ("cleared", "hydraulic_press-01", "device_offline"),
    ]


def test_packaged_yaml_ships_as_package_data() -> None:
    text = packaged_rules_text()
    assert text.startswith("# Default alert rules")
    assert parse_rules(text, source="x") == load_rules()


# -- operator overrides ----------------------------------------------------------------------


def test_override_merges_fields_disables_rules_and_adds_types(tmp_path: Path) -> None:
    rules = load_rules(
        write(
            tmp_path,
            """
types:
  cnc_spindle:
    offline: {after_s: 120}
    rules:
      spindle_temp_c.threshold: {crit_high: 90, crit_low: null, hysteresis: "3%"}
      spindle_temp_c.flatline: {enabled: false}
      spindle_load_pct.threshold: {kind: flatline, metric: spindle_load_pct, samples: 10}
      door_open.threshold: {kind: threshold, metric: door_open, equals: true}
  pump:
    rules:
      flow_l_min.threshold: {kind: threshold, metric: flow_l_min, warn_low: 10}
default:
  offline: {after_s: 300, severity: warning}
""",
        )
    )
    cnc = rules.types["cnc_spindle"]
    by_id = {r.id: r for r in cnc.rules}
    temp = by_id["cnc_spindle.spindle_temp_c.threshold"]
    assert isinstance(temp, Threshold)
    assert (temp.warn_high, temp.crit_high, temp.crit_low) == (75, 90, None)
    assert str(temp.hysteresis) == "3%"
    assert "cnc_spindle.spindle_temp_c.flatline" not in by_id
    # A new kind replaces the packaged rule whole.
    assert by_id["cnc_spindle.spindle_load_pct.threshold"] == Flatline(
        "cnc_spindle.spindle_load_pct.threshold", "spindle_load_pct", samples=10
    )
    assert by_id["cnc_spindle.door_open.threshold"] == FlagThreshold(
        "cnc_spindle.door_open.threshold", "door_open"
    )
    assert cnc.offline == Offline(after_s=120, severity="critical")
    # Types without their own offline section follow the (overridden) default section.
    assert rules.types["conveyor"].offline == Offline(after_s=300, severity="warning")
    assert rules.for_type("pump").rules == (
        Threshold("pump.flow_l_min.threshold", "flow_l_min", warn_low=10),
    )
    assert rules.for_type("unknown") is rules.default
    # Order of the packaged rules is kept; new ones come last.
    assert list(by_id)[:2] == [
        "cnc_spindle.spindle_temp_c.threshold",
        "cnc_spindle.spindle_temp_c.rate",
    ]


def test_override_disables_offline_detection_for_a_type(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "types:\n  conveyor:\n    offline: {enabled: false}\n"))
    assert rules.types["conveyor"].offline is None
    assert rules.types["cnc_spindle"].offline is not None


def test_empty_override_changes_nothing(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, "# nothing yet\n")) == load_rules()


# -- errors ----------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, "types:\n  cnc_spindle: {rules: [\n")
    assert problem.startswith(f"{tmp_path / 'rules.yaml'}:3:1: invalid YAML:")


def test_unknown_field_names_path_and_line(tmp_path: Path) -> None:
    text = (
        "types:\n  cnc_spindle:\n    rules:\n"
        "      spindle_temp_c.threshold:\n        warn_hgih: 70\n"
    )
    (problem,) = problems_of(tmp_path, text)
    assert problem == (
        f"{tmp_path / 'rules.yaml'}:5: types.cnc_spindle.rules['spindle_temp_c.threshold']"
        ".warn_hgih: Extra inputs are not permitted (after merging over the packaged defaults)"
    )


def test_wrong_types_are_not_coerced(tmp_path: Path) -> None:
    text = (
        "types:\n  cnc_spindle:\n    rules:\n"
        "      spindle_temp_c.threshold: {crit_high: '90'}\n"
        "      spindle_temp_c.flatline: {samples: yes}\n"
    )
    first, second = problems_of(tmp_path, text)
    assert "['spindle_temp_c.threshold'].crit_high: Input should be a valid number" in first
    assert "['spindle_temp_c.flatline'].samples: Input should be a valid integer" in second


def test_inconsistent_limits_after_merging_are_reported_at_the_rule(tmp_path: Path) -> None:
    text = "types:\n  cnc_spindle:\n    rules:\n      spindle_temp_c.threshold: {warn_high: 90}\n"
    (problem,) = problems_of(tmp_path, text)
    assert problem == (
        f"{tmp_path / 'rules.yaml'}:4: types.cnc_spindle.rules['spindle_temp_c.threshold']: "
        "warn_high (90) must be below crit_high (85) (after merging over the packaged defaults)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\n", "rules.yaml:1: version: Input should be 1"),
        ("- a\n- b\n", "the file must be a mapping"),
        ("types:\n  Bad-Type: {}\n", "types['Bad-Type']: a device type is"),
        ("types:\n  default: {}\n", "types.default: use the top-level default section"),
        ("types:\n  pump:\n    rules:\n      X: {}\n", "a rule key is dot-separated"),
        (
            "types:\n  pump:\n    rules:\n      a.b: {metric: m}\n",
            "types.pump.rules['a.b']: Unable to extract tag using discriminator 'kind'",
        ),
        (
            "types:\n  pump:\n    rules:\n      a.b: {kind: spike, metric: m}\n",
            "types.pump.rules['a.b']: Input tag 'spike' found using 'kind' does not match",
        ),
        (
            "types:\n  pump:\n    rules:\n      a.b: {kind: flatline, metric: m}\n",
            "types.pump.rules['a.b'].samples: Field required",
        ),
        (
            pump_rule("kind: threshold, metric: m, crit_high: 1, hysteresis: lots"),
            "hysteresis must be a number (in the metric's unit) or a percentage like '5%'",
        ),
        (
            pump_rule("kind: threshold, metric: m, equals: true, crit_high: 1"),
            "a threshold with equals (a flag) takes no limits or hysteresis",
        ),
        (
            pump_rule("kind: threshold, metric: m, crit_high: 1, severity: critical"),
            "severity applies only with equals",
        ),
        (
            pump_rule("kind: rate_of_change, metric: m, max_per_s: 1"),
            "give exactly one of window_samples and window_s",
        ),
        (
            pump_rule("kind: threshold, metric: Temp, crit_high: 1"),
            "metric 'Temp' is not a valid metric name",
        ),
        (
            "default:\n  offline: {after_s: -1}\n",
            "default.offline.after_s: Input should be greater than 0",
        ),
        (
            "types:\n  pump:\n    rules:\n      a: {}\n      a: {}\n",
            "rules.yaml:5: types.pump.rules.a: duplicate key",
        ),
    ],
)
def test_bad_rule_files_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        "types:\n  pump:\n    rules:\n"
        "      a: {kind: flatline, metric: m, samples: 1}\n"
        "      b: {kind: flatline, metric: m, samples: 0}\n"
    )
    with pytest.raises(RulesError) as info:
        load_rules(write(tmp_path, text))
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("invalid alert rules:\n  ")


def test_unreadable_override(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"missing\.yaml: cannot read: No such file"):
        load_rules(tmp_path / "missing.yaml")


def test_problems_in_the_packaged_file_name_it() -> None:
    with pytest.raises(RulesError, match="packaged"):
        parse_rules("types: 3\n", source=PACKAGED_SOURCE)


def test_rule_set_without_types_falls_back_to_default() -> None:
    assert RuleSet().for_type("cnc_spindle") == RuleSet().default
