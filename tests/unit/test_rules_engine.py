from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.rules import (
    DEVICE_OFFLINE,
    GATEWAY_OFFLINE,
    AlertEngine,
    AlertTransition,
    FlagThreshold,
    Flatline,
    Hysteresis,
    Offline,
    OpenAlert,
    RateOfChange,
    Rule,
    RuleSet,
    Threshold,
    TypeRules,
)
from hub.rules._checks import ThresholdCheck
from hub.rules.engine import quiet_band
from protocol.models import NormalisedReading

SPINDLE = Threshold(
    "cnc_spindle.spindle_temp_c.threshold",
    "spindle_temp_c",
    warn_high=75.0,
    crit_high=85.0,
    hysteresis=Hysteresis(2.0),
)

DEFAULT_OFFLINE = Offline()


def reading(
    ts: int,
    metrics: dict[str, float | bool],
    *,
    device_id: str = "cnc-01",
    device_type: str | None = "cnc_spindle",
    gateway_id: str = "gw-1",
) -> NormalisedReading:
    return NormalisedReading(
        site="s1",
        device_id=device_id,
        type=device_type,
        ts=ts,
        seq=None,
        metrics=metrics,
        gateway_id=gateway_id,
        received_ts=ts,
    )


def engine_with(
    *rules: Rule,
    offline: Offline | None = DEFAULT_OFFLINE,
    device_offline_after_s: float = 60.0,
    gateway_offline_after_s: float = 30.0,
) -> AlertEngine:
    rule_set = RuleSet({"cnc_spindle": TypeRules(rules, offline)})
    return AlertEngine(
        rule_set,
        device_offline_after_s=device_offline_after_s,
        gateway_offline_after_s=gateway_offline_after_s,
    )


def feed(
    engine: AlertEngine, metric: str, values: list[float | bool], *, start_ts: int = 0
) -> list[list[AlertTransition]]:
    """One reading per second; the transitions of each."""
    return [engine.observe(reading(start_ts + i * 1000, {metric: v})) for i, v in enumerate(values)]


def summary(transitions: list[AlertTransition]) -> list[tuple[str, str, str]]:
    return [(t.kind, t.rule, t.severity) for t in transitions]


# -- thresholds ------------------------------------------------------------------------------


def test_threshold_escalates_eases_and_clears_only_past_the_hysteresis() -> None:
    engine = engine_with(SPINDLE)
    values: list[float | bool] = [70.0, 76.0, 74.5, 76.0, 86.0, 84.0, 82.0, 73.5, 72.9, 74.0]
    steps = [
        [(t.kind, t.severity, t.value) for t in step]
        for step in feed(engine, "spindle_temp_c", values)
    ]
    assert steps == [
        [],
        [("raised", "warning", 76.0)],
        [],  # 74.5 is below 75 but within 2 of it: still a warning
        [],
        [("updated", "critical", 86.0)],
        [],  # 84 > 85 - 2: still critical
        [("updated", "warning", 82.0)],
        [],  # 73.5 > 75 - 2: still a warning
        [("cleared", "warning", 72.9)],
        [],  # below the warning limit: nothing to raise
    ]


def test_threshold_transition_fields_and_messages() -> None:
    engine = engine_with(SPINDLE)
    (raised,) = engine.observe(reading(1_000, {"spindle_temp_c": 92.4}))
    assert raised == AlertTransition(
        kind="raised",
        device_id="cnc-01",
        gateway_id="gw-1",
        rule="cnc_spindle.spindle_temp_c.threshold",
        severity="critical",
        metric="spindle_temp_c",
        value=92.4,
        message="spindle_temp_c 92.4 above critical 85 (cnc-01)",
        ts=1_000,
    )
    (cleared,) = engine.observe(reading(2_000, {"spindle_temp_c": 60.0}))
    assert (cleared.kind, cleared.severity, cleared.message) == (
        "cleared",
        "critical",
        "spindle_temp_c 60 back to normal (cnc-01)",
    )


def test_a_jump_over_both_levels_raises_critical_once_and_clears_once() -> None:
    engine = engine_with(SPINDLE)
    steps = feed(engine, "spindle_temp_c", [60.0, 90.0, 60.0])
    assert [summary(s) for s in steps] == [
        [],
        [("raised", "cnc_spindle.spindle_temp_c.threshold", "critical")],
        [("cleared", "cnc_spindle.spindle_temp_c.threshold", "critical")],
    ]


def test_value_hovering_at_the_limit_does_not_flap() -> None:
    engine = engine_with(SPINDLE)
    values: list[float | bool] = [74.9 if i % 2 else 75.1 for i in range(1000)]
    flat = [t for step in feed(engine, "spindle_temp_c", values) for t in step]
    assert summary(flat) == [("raised", SPINDLE.id, "warning")]


def test_low_thresholds_with_hysteresis() -> None:
    rule = Threshold(
        "cnc_spindle.pressure.threshold",
        "pressure",
        warn_low=6.1,
        crit_low=5.9,
        hysteresis=Hysteresis(0.05),
    )
    engine = engine_with(rule)
    values: list[float | bool] = [6.5, 6.05, 5.8, 5.92, 5.96, 6.12, 6.2]
    steps = [[(t.kind, t.severity) for t in s] for s in feed(engine, "pressure", values)]
    assert steps == [
        [],
        [("raised", "warning")],
        [("updated", "critical")],
        [],  # 5.92 < 5.9 + 0.05
        [("updated", "warning")],
        [],  # 6.12 < 6.1 + 0.05
        [("cleared", "warning")],
    ]
    engine = engine_with(rule)
    (raised,) = engine.observe(reading(0, {"pressure": 5.5}))
    assert raised.message == "pressure 5.5 below critical 5.9 (cnc-01)"


def test_percent_hysteresis_is_a_share_of_the_limit() -> None:
    rule = Threshold(
        "cnc_spindle.load.threshold",
        "load",
        crit_high=100.0,
        hysteresis=Hysteresis(5.0, percent=True),
    )
    engine = engine_with(rule)
    steps = [[t.kind for t in s] for s in feed(engine, "load", [101.0, 96.0, 95.0])]
    assert steps == [["raised"], [], ["cleared"]]


def test_bool_equals_raises_while_the_flag_matches() -> None:
    jammed = FlagThreshold(
        "cnc_spindle.jammed.threshold", "jammed", equals=True, severity="critical"
    )
    engine = engine_with(jammed)
    values: list[float | bool] = [False, True, True, True, False, False]
    steps = [
        [(t.kind, t.severity, t.value, t.message) for t in s]
        for s in feed(engine, "jammed", values)
    ]
    assert steps == [
        [],
        [("raised", "critical", 1.0, "jammed is true (cnc-01)")],
        [],
        [],
        [("cleared", "critical", 0.0, "jammed is false again (cnc-01)")],
        [],
    ]


def test_rules_skip_values_of_the_wrong_type_and_missing_metrics() -> None:
    jammed = FlagThreshold("cnc_spindle.jammed.threshold", "jammed")
    engine = engine_with(jammed, SPINDLE)
    assert engine.observe(reading(0, {"jammed": 1.0, "spindle_temp_c": True})) == []
    assert engine.observe(reading(1_000, {"other": 99.0})) == []


# -- flatline --------------------------------------------------------------------------------


def test_flatline_after_n_identical_samples_clears_on_first_change() -> None:
    engine = engine_with(Flatline("cnc_spindle.t.flatline", "t", samples=30))
    steps = feed(engine, "t", [61.2] * 35 + [61.3, 61.3])
    kinds = [(i, t.kind) for i, s in enumerate(steps) for t in s]
    assert kinds == [(29, "raised"), (35, "cleared")]
    assert steps[29][0].message == "t unchanged at 61.2 for 30 samples (cnc-01)"


def test_flatline_only_counts_while_its_condition_holds() -> None:
    rule = Flatline("cnc_spindle.t.flatline", "t", samples=30, when="running")
    engine = engine_with(rule)
    out: list[AlertTransition] = []
    for i in range(100):
        running = not 20 <= i < 25  # a short stop resets the count
        out += engine.observe(reading(i * 1000, {"t": 20.0, "running": running}))
    assert [(t.kind, t.ts) for t in out] == [("raised", 54_000)]
    # The machine stops: the check pauses and its alert clears.
    (cleared,) = engine.observe(reading(100_000, {"t": 20.0, "running": False}))
    assert cleared.kind == "cleared"
    assert cleared.message == "t not checked: running is false (cnc-01)"
    # Without the condition in a reading the rule has no opinion.
    assert engine.observe(reading(101_000, {"t": 20.0})) == []


def test_replayed_and_out_of_order_samples_do_not_count_or_flap() -> None:
    engine = engine_with(
        SPINDLE, Flatline("cnc_spindle.spindle_temp_c.flatline", "spindle_temp_c", samples=3)
    )
    assert engine.observe(reading(10_000, {"spindle_temp_c": 90.0})) != []
    # An older reading, normal: it must not clear the alert.
    assert engine.observe(reading(5_000, {"spindle_temp_c": 60.0})) == []
    # The same reading replayed twice must not make a flatline.
    assert engine.observe(reading(10_000, {"spindle_temp_c": 90.0})) == []
    assert engine.observe(reading(10_000, {"spindle_temp_c": 90.0})) == []
    assert engine.open_alerts() == [
        OpenAlert("cnc-01", "gw-1", SPINDLE.id, "critical"),
    ]


# -- rate of change --------------------------------------------------------------------------


def test_rate_of_change_over_a_time_window() -> None:
    rule = RateOfChange("cnc_spindle.t.rate", "t", max_per_s=2.0, window_s=10.0)
    engine = engine_with(rule)
    slow: list[float | bool] = [50.0 + 0.1 * i for i in range(20)]  # 0.1 °C/s
    assert all(s == [] for s in feed(engine, "t", slow))
    # +30 °C within a second: 30 / 10 s = 3 °C/s over the window.
    (raised,) = engine.observe(reading(20_000, {"t": 81.9}))
    assert (raised.kind, raised.severity) == ("raised", "warning")
    assert raised.message == "t rising 3.09/s over 10 s, limit 2/s (cnc-01)"
    steady = [engine.observe(reading(21_000 + i * 1000, {"t": 81.9})) for i in range(12)]
    kinds = [(i, t.kind) for i, s in enumerate(steady) for t in s]
    # Open while the slow samples before the jump are still in the window.
    assert kinds == [(9, "cleared")]


def test_rate_of_change_over_samples_and_falling_only() -> None:
    rule = RateOfChange(
        "cnc_spindle.p.rate", "p", max_per_s=1.0, window_samples=3, direction="falling"
    )
    engine = engine_with(rule)
    steps = feed(engine, "p", [10.0, 20.0, 30.0, 30.0, 27.0, 25.0, 25.0, 25.0])
    kinds = [(i, t.kind) for i, s in enumerate(steps) for t in s]
    # A rise is not this rule's business; a fall of 3 over 2 s is.
    assert kinds == [(4, "raised"), (6, "cleared")]


def test_rate_needs_a_span_of_half_the_window_after_a_gap() -> None:
    engine = engine_with(RateOfChange("cnc_spindle.t.rate", "t", max_per_s=2.0, window_s=10.0))
    assert engine.observe(reading(0, {"t": 20.0})) == []
    # 100 s later: nothing left in the window to compare with.
    assert engine.observe(reading(100_000, {"t": 80.0})) == []
    assert engine.observe(reading(100_100, {"t": 90.0})) == []  # 0.1 s is too short a span


# -- offline ---------------------------------------------------------------------------------


def test_device_offline_via_tick_and_cleared_by_the_next_reading() -> None:
    engine = engine_with(SPINDLE)
    for i in range(6):
        engine.observe(reading(i * 1000, {"spindle_temp_c": 50.0}))
    assert engine.tick(65_000) == []  # 60 s since the last reading at 5 s: not yet
    (raised,) = engine.tick(65_001)
    assert (raised.kind, raised.rule, raised.device_id, raised.gateway_id) == (
        "raised",
        DEVICE_OFFLINE,
        "cnc-01",
        "gw-1",
    )
    assert (raised.severity, raised.metric, raised.value, raised.ts) == (
        "critical",
        None,
        None,
        65_001,
    )
    assert raised.message == "no data from cnc-01 for 60.001 s"
    assert engine.tick(200_000) == []  # one alert, however long the silence
    (cleared,) = engine.observe(reading(201_000, {"spindle_temp_c": 50.0}))
    assert (cleared.kind, cleared.rule) == ("cleared", DEVICE_OFFLINE)
    assert engine.tick(202_000) == []


def test_offline_period_per_type_and_disabled_offline() -> None:
    rules = RuleSet(
        {"cnc_spindle": TypeRules((), Offline(after_s=10.0)), "conveyor": TypeRules((), None)}
    )
    engine = AlertEngine(rules, device_offline_after_s=60.0, gateway_offline_after_s=30.0)
    engine.observe(reading(0, {"x": 1.0}))
    engine.observe(reading(0, {"x": 1.0}, device_id="conveyor-01", device_type="conveyor"))
    engine.observe(reading(0, {"x": 1.0}, device_id="pump-01", device_type="pump"))
    engine.observe(reading(0, {"x": 1.0}, device_id="anon-01", device_type=None))
    assert [t.device_id for t in engine.tick(10_001)] == ["cnc-01"]
    # Unknown types and readings without a type get the default section: offline after 60 s.
    assert [t.device_id for t in engine.tick(60_001)] == ["pump-01", "anon-01"]
    assert engine.tick(10_000_000) == []


def test_explicit_offline_status_raises_at_once() -> None:
    engine = engine_with(SPINDLE)
    engine.observe(reading(1_000, {"spindle_temp_c": 50.0}))
    (raised,) = engine.observe_status("cnc-01", "gw-1", "offline", 2_000)
    assert (raised.kind, raised.rule, raised.ts, raised.message) == (
        "raised",
        DEVICE_OFFLINE,
        2_000,
        "cnc-01 reported offline",
    )
    assert engine.observe_status("cnc-01", "gw-1", "offline", 2_500) == []
    assert engine.tick(500_000) == []  # already open
    # A reading from before the status (drained from a buffer) does not clear it...
    assert engine.observe(reading(1_500, {"spindle_temp_c": 50.0})) == []
    # ...a newer one does.
    (cleared,) = engine.observe(reading(3_000, {"spindle_temp_c": 50.0}))
    assert (cleared.kind, cleared.rule) == ("cleared", DEVICE_OFFLINE)


def test_stale_offline_status_and_online_status() -> None:
    engine = engine_with(SPINDLE)
    engine.observe(reading(5_000, {"spindle_temp_c": 50.0}))
    # A retained "offline" older than the data the device has sent since.
    assert engine.observe_status("cnc-01", "gw-1", "offline", 1_000) == []
    # "online" proves the device is alive without clearing anything.
    assert engine.observe_status("cnc-01", "gw-1", "online", 50_000) == []
    assert engine.tick(100_000) == []
    assert [t.kind for t in engine.tick(110_001)] == ["raised"]


def test_offline_status_for_an_unknown_device() -> None:
    engine = engine_with(SPINDLE)
    (raised,) = engine.observe_status("pump-07", "gw-2", "offline", 1_000)
    assert (raised.device_id, raised.gateway_id, raised.rule) == ("pump-07", "gw-2", DEVICE_OFFLINE)


# -- gateway outage --------------------------------------------------------------------------

DEVICES = [f"cnc-{n:02d}" for n in range(1, 6)]


def run_fleet(
    engine: AlertEngine, start_s: int, end_s: int, *, devices: list[str], heartbeat: bool
) -> list[AlertTransition]:
    """One reading per device per second, a heartbeat every 10 s, a tick every second."""
    out: list[AlertTransition] = []
    for second in range(start_s, end_s):
        now = second * 1000
        if heartbeat and second % 10 == 0:
            out += engine.observe_heartbeat("gw-1", now)
        for device_id in devices:
            out += engine.observe(reading(now, {"spindle_temp_c": 50.0}, device_id=device_id))
        out += engine.tick(now)
    return out


def silence(engine: AlertEngine, start_s: int, end_s: int) -> list[AlertTransition]:
    out: list[AlertTransition] = []
    for second in range(start_s, end_s):
        out += engine.tick(second * 1000)
    return out


def test_gateway_outage_raises_one_alert_and_holds_back_its_devices() -> None:
    engine = engine_with(SPINDLE)
    assert run_fleet(engine, 0, 100, devices=DEVICES, heartbeat=True) == []
    # gw-1 and all its devices go silent together, for ten minutes.
    outage = silence(engine, 100, 700)
    assert summary(outage) == [("raised", GATEWAY_OFFLINE, "critical")]
    (gw_alert,) = outage
    assert (gw_alert.device_id, gw_alert.gateway_id, gw_alert.metric, gw_alert.value) == (
        None,
        "gw-1",
        None,
        None,
    )
    assert gw_alert.ts == 121_000  # last heartbeat at 90 s, then more than 30 s
    assert gw_alert.message == (
        "no heartbeat from gateway gw-1 for 31 s; offline alerts of its 5 device(s) held back"
    )
    # The gateway returns; four devices resume, cnc-05 stays silent.
    back = run_fleet(engine, 700, 800, devices=DEVICES[:4], heartbeat=True)
    assert [(t.kind, t.rule, t.device_id, t.ts) for t in back] == [
        ("cleared", GATEWAY_OFFLINE, None, 700_000),
        # cnc-05 gets a full offline period from the gateway's return.
        ("raised", DEVICE_OFFLINE, "cnc-05", 761_000),
    ]


def test_devices_of_a_gateway_without_heartbeats_are_treated_normally() -> None:
    engine = engine_with(SPINDLE)
    assert run_fleet(engine, 0, 100, devices=DEVICES, heartbeat=False) == []
    outage = silence(engine, 100, 200)
    assert [(t.rule, t.device_id) for t in outage] == [(DEVICE_OFFLINE, d) for d in DEVICES]


def test_a_device_silent_while_its_gateway_lives_is_reported() -> None:
    engine = engine_with(SPINDLE)
    run_fleet(engine, 0, 100, devices=DEVICES, heartbeat=True)
    out = run_fleet(engine, 100, 200, devices=DEVICES[1:], heartbeat=True)
    assert [(t.rule, t.device_id, t.ts) for t in out] == [(DEVICE_OFFLINE, "cnc-01", 160_000)]


def test_short_device_offline_period_waits_for_the_gateway_verdict() -> None:
    # Devices time out after 10 s, the gateway after 30 s: a dead gateway must still not
    # produce a storm of device alerts before its own alert.
    engine = engine_with(SPINDLE, device_offline_after_s=10.0)
    run_fleet(engine, 0, 101, devices=DEVICES, heartbeat=True)
    outage = silence(engine, 101, 300)
    assert summary(outage) == [("raised", GATEWAY_OFFLINE, "critical")]


def test_offline_status_is_held_back_during_a_gateway_outage() -> None:
    engine = engine_with(SPINDLE)
    run_fleet(engine, 0, 100, devices=DEVICES, heartbeat=True)
    assert len(silence(engine, 100, 200)) == 1
    assert engine.observe_status("cnc-01", "gw-1", "offline", 200_000) == []


# -- storms ----------------------------------------------------------------------------------


def test_ten_thousand_noisy_readings_around_a_threshold_make_a_handful_of_transitions() -> None:
    rng = random.Random(7)
    engine = engine_with(
        SPINDLE, Flatline("cnc_spindle.spindle_temp_c.flatline", "spindle_temp_c", samples=30)
    )
    out: list[AlertTransition] = []
    for i in range(10_000):
        value = round(75.0 + rng.uniform(-1.5, 1.5), 1)  # sensor noise across the warning limit
        out += engine.observe(reading(i * 1000, {"spindle_temp_c": value}))
    assert summary(out) == [("raised", SPINDLE.id, "warning")]


def test_a_slow_excursion_with_noise_raises_and_clears_once_per_level() -> None:
    rng = random.Random(11)
    engine = engine_with(
        SPINDLE,
        RateOfChange(
            "cnc_spindle.spindle_temp_c.rate", "spindle_temp_c", max_per_s=2.0, window_s=10.0
        ),
    )
    out: list[AlertTransition] = []
    for i in range(10_000):
        # 60 °C up to 90 °C and back over 10,000 s, with 0.3 °C of sensor noise.
        trend = 60.0 + 30.0 * (1.0 - abs(i - 5_000) / 5_000)
        out += engine.observe(
            reading(i * 1000, {"spindle_temp_c": round(trend + rng.gauss(0.0, 0.3), 1)})
        )
    assert [(t.kind, t.severity) for t in out] == [
        ("raised", "warning"),
        ("updated", "critical"),
        ("updated", "warning"),
        ("cleared", "warning"),
    ]


# -- the quiet band (the engine's shortcut for samples that raise nothing) ------------------

LIMITS = st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4, unique=True).map(sorted)
VALUES = st.lists(st.floats(-2e6, 2e6), min_size=1, max_size=20)


@settings(max_examples=500, deadline=None, database=None)
@given(LIMITS, st.lists(st.booleans(), min_size=4, max_size=4), VALUES)
def test_a_value_is_in_the_quiet_band_exactly_when_the_threshold_wants_no_alert(
    limits: list[float], present: list[bool], values: list[float]
) -> None:
    # crit_low < warn_low < warn_high < crit_high, each there or not (at least one there).
    crit_low, warn_low, warn_high, crit_high = (
        limit if there else None for limit, there in zip(limits, present, strict=True)
    )
    if not any(present):
        warn_high = limits[2]
    rule = Threshold(
        "t.m.threshold",
        "m",
        warn_high=warn_high,
        crit_high=crit_high,
        warn_low=warn_low,
        crit_low=crit_low,
    )
    low, high = quiet_band(rule)
    check = ThresholdCheck(rule)
    for value in [*values, *limits, low, high]:
        assert (low <= value <= high) == (check.update(0, value, None).severity is None)


def test_the_quiet_shortcut_still_clears_an_open_alert_and_still_raises() -> None:
    engine = engine_with(SPINDLE)
    out = engine.observe(reading(1_000, {"spindle_temp_c": 75.0}))  # at the limit: quiet
    out += engine.observe(reading(2_000, {"spindle_temp_c": 75.5}))
    out += engine.observe(reading(3_000, {"spindle_temp_c": 74.0}))  # within the hysteresis
    out += engine.observe(reading(4_000, {"spindle_temp_c": 60.0}))
    out += engine.observe(reading(5_000, {"spindle_temp_c": 60.0}))
    assert summary(out) == [("raised", SPINDLE.id, "warning"), ("cleared", SPINDLE.id, "warning")]
    assert [t.ts for t in out] == [2_000, 4_000]


def test_quiet_samples_out_of_order_change_nothing() -> None:
    engine = engine_with(SPINDLE)
    assert engine.observe(reading(10_000, {"spindle_temp_c": 60.0})) == []
    assert engine.observe(reading(5_000, {"spindle_temp_c": 60.0})) == []  # older, quiet
    assert engine.observe(reading(6_000, {"spindle_temp_c": 90.0})) == []  # older, hot
    assert engine.observe(reading(10_000, {"spindle_temp_c": 90.0})) == []  # same ts
    assert summary(engine.observe(reading(11_000, {"spindle_temp_c": 90.0}))) == [
        ("raised", SPINDLE.id, "critical")
    ]


def test_a_threshold_checked_only_while_running_waits_for_the_flag() -> None:
    rule = Threshold("cnc_spindle.t.threshold", "t", crit_high=80.0, when="running")
    engine = engine_with(rule)
    assert engine.observe(reading(1_000, {"t": 90.0})) == []  # the flag unknown
    assert engine.observe(reading(2_000, {"t": 90.0, "running": False})) == []
    assert summary(engine.observe(reading(3_000, {"t": 90.0, "running": True}))) == [
        ("raised", rule.id, "critical")
    ]


# -- lifecycle helpers -----------------------------------------------------------------------


def test_restored_alerts_are_not_raised_again_and_clear_by_their_rule() -> None:
    engine = engine_with(SPINDLE)
    engine.restore(
        [
            OpenAlert("cnc-01", "gw-1", SPINDLE.id, "critical"),
            OpenAlert("cnc-01", "gw-1", "cnc_spindle.gone.threshold", "warning"),
            OpenAlert(None, "gw-1", GATEWAY_OFFLINE, "critical"),
        ],
        now_ms=0,
    )
    assert len(engine.open_alerts()) == 3
    first = engine.observe(reading(1_000, {"spindle_temp_c": 90.0}))
    # The alert whose rule no longer exists is closed; the hot spindle stays critical.
    assert summary(first) == [("cleared", "cnc_spindle.gone.threshold", "warning")]
    assert summary(engine.observe(reading(2_000, {"spindle_temp_c": 50.0}))) == [
        ("cleared", SPINDLE.id, "critical")
    ]
    assert summary(engine.observe_heartbeat("gw-1", 3_000)) == [
        ("cleared", GATEWAY_OFFLINE, "critical")
    ]
    assert engine.open_alerts() == []


def test_forget_lets_a_persisting_condition_raise_again() -> None:
    engine = engine_with(SPINDLE)
    engine.observe(reading(1_000, {"spindle_temp_c": 90.0}))
    engine.forget("cnc-01", SPINDLE.id)
    assert engine.open_alerts() == []
    assert summary(engine.observe(reading(2_000, {"spindle_temp_c": 90.0}))) == [
        ("raised", SPINDLE.id, "critical")
    ]


def test_a_device_changing_type_closes_alerts_of_rules_it_lost() -> None:
    engine = engine_with(SPINDLE)
    engine.observe(reading(1_000, {"spindle_temp_c": 90.0}))
    out = engine.observe(reading(2_000, {"spindle_temp_c": 90.0}, device_type="pump"))
    assert [(t.kind, t.rule, t.message) for t in out] == [
        ("cleared", SPINDLE.id, f"rule {SPINDLE.id} no longer applies to cnc-01")
    ]


@pytest.mark.parametrize(
    ("device_s", "gateway_s"), [(0.0, 30.0), (60.0, -1.0), (float("nan"), 1.0)]
)
def test_engine_rejects_bad_offline_periods(device_s: float, gateway_s: float) -> None:
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        AlertEngine(RuleSet(), device_offline_after_s=device_s, gateway_offline_after_s=gateway_s)


# -- clear_after_s ---------------------------------------------------------------------------

RAM = Threshold(
    "cnc_spindle.ram_pressure_bar.threshold",
    "ram_pressure_bar",
    warn_high=240.0,
    crit_high=262.0,
    hysteresis=Hysteresis(5.0),
    clear_after_s=60.0,
)


def test_a_cyclic_signal_keeps_one_alert_open_until_it_has_been_calm_long_enough() -> None:
    engine = engine_with(RAM)
    # A press whose sensor drifted: every 10 s stroke peaks above the warning limit and the
    # return stroke falls to 30 bar. Without clear_after_s that is one alert per stroke.
    stroke = [30.0, 30.0, 30.0, 120.0, 200.0, 250.0, 250.0, 100.0, 30.0, 30.0]
    drifting: list[float | bool] = stroke * 30
    healthy: list[float | bool] = [min(v, 200.0) for v in stroke] * 10
    steps = feed(engine, "ram_pressure_bar", drifting + healthy)
    kinds = [(i, t.kind, t.severity) for i, s in enumerate(steps) for t in s]
    # Raised at the first peak; cleared 60 s after the last one (index 296).
    assert kinds == [(5, "raised", "warning"), (357, "cleared", "warning")]


def test_clear_after_also_delays_easing_and_a_relapse_restarts_the_wait() -> None:
    engine = engine_with(RAM)
    values: list[float | bool] = [270.0] + [250.0] * 30 + [270.0] + [250.0] * 61 + [100.0] * 61
    steps = feed(engine, "ram_pressure_bar", values)
    kinds = [(i, t.kind, t.severity) for i, s in enumerate(steps) for t in s]
    assert kinds == [
        (0, "raised", "critical"),
        (92, "updated", "warning"),  # 60 s after the relapse at index 31
        (153, "cleared", "warning"),
    ]


def test_a_stopped_machine_clears_at_once_despite_clear_after() -> None:
    rule = Threshold(
        "cnc_spindle.t.threshold", "t", crit_high=80.0, clear_after_s=60.0, when="running"
    )
    engine = engine_with(rule)
    assert [t.kind for t in engine.observe(reading(0, {"t": 90.0, "running": True}))] == ["raised"]
    assert [t.kind for t in engine.observe(reading(1_000, {"t": 90.0, "running": False}))] == [
        "cleared"
    ]


def test_an_alert_keeps_the_gateway_it_was_raised_with() -> None:
    # The store keys open alerts by (device, gateway, rule): a device that moves to another
    # gateway must still update and clear the alert it opened through the first one.
    engine = engine_with(SPINDLE)
    engine.observe(reading(1_000, {"spindle_temp_c": 80.0}, gateway_id="gw-1"))
    engine.tick(100_000)
    moved = engine.observe(reading(101_000, {"spindle_temp_c": 90.0}, gateway_id="gw-2"))
    assert [(t.kind, t.rule, t.gateway_id) for t in moved] == [
        ("cleared", DEVICE_OFFLINE, "gw-1"),
        ("updated", SPINDLE.id, "gw-1"),
    ]
    assert engine.open_alerts() == [OpenAlert("cnc-01", "gw-1", SPINDLE.id, "critical")]
    (cleared,) = engine.observe(reading(102_000, {"spindle_temp_c": 50.0}, gateway_id="gw-2"))
    assert (cleared.kind, cleared.gateway_id) == ("cleared", "gw-1")
    (raised,) = engine.observe(reading(103_000, {"spindle_temp_c": 90.0}, gateway_id="gw-2"))
    assert (raised.kind, raised.gateway_id) == ("raised", "gw-2")


def test_retain_forgets_devices_and_disowns_gateways_handed_to_another_worker() -> None:
    engine = engine_with(SPINDLE)
    engine.observe_heartbeat("gw-1", 0)
    engine.observe_heartbeat("gw-2", 0)
    for device_id, gateway_id in (("cnc-01", "gw-1"), ("cnc-02", "gw-2")):
        engine.observe(
            reading(0, {"spindle_temp_c": 50.0}, device_id=device_id, gateway_id=gateway_id)
        )
    assert engine.retain(lambda d: d == "cnc-01", lambda g: g == "gw-1") == (1, 1)
    # cnc-02 is forgotten: its silence here is no outage. gw-2 is another worker's to raise.
    transitions = engine.tick(100_000)
    assert [(t.rule, t.gateway_id) for t in transitions] == [("gateway_offline", "gw-1")]
    # A forgotten device that sends here again is known again: here, behind gw-2's outage.
    engine.observe(
        reading(101_000, {"spindle_temp_c": 50.0}, device_id="cnc-02", gateway_id="gw-2")
    )
    assert engine.tick(200_000) == []


def test_a_gateway_heard_by_another_worker_holds_back_its_devices_here() -> None:
    engine = engine_with(SPINDLE, device_offline_after_s=60.0, gateway_offline_after_s=30.0)
    # This worker has the device; another worker has the gateway's heartbeats (shared view).
    engine.observe(reading(0, {"spindle_temp_c": 50.0}, gateway_id="gw-far"))
    for t in range(0, 20_001, 10_000):
        assert engine.observe_heartbeat("gw-far", t, shared=True) == []
        assert engine.tick(t) == []
    # The gateway and its device fall silent: no gateway alert here (not this worker's), and
    # the device's offline alert is held back behind the outage.
    assert engine.tick(51_000) == []
    assert engine.tick(120_000) == []
    # An old shared record changes nothing; a newer one ends the outage, silently here, and
    # the device gets a full offline period from then.
    assert engine.observe_heartbeat("gw-far", 15_000, shared=True) == []
    assert engine.observe_heartbeat("gw-far", 125_000, shared=True) == []
    for t in (150_000, 175_000):  # the gateway is alive; the device stays silent
        assert engine.observe_heartbeat("gw-far", t, shared=True) == []
        assert engine.tick(t) == []
    (raised,) = engine.tick(185_001)
    assert (raised.rule, raised.device_id) == (DEVICE_OFFLINE, "cnc-01")


def test_a_direct_heartbeat_makes_the_gateway_this_workers_own() -> None:
    engine = engine_with(SPINDLE)
    engine.observe_heartbeat("gw-1", 0, shared=True)
    engine.observe_heartbeat("gw-1", 1_000)  # its partition came to this worker
    (raised,) = engine.tick(40_000)
    assert (raised.kind, raised.rule, raised.gateway_id) == ("raised", "gateway_offline", "gw-1")
    (cleared,) = engine.observe_heartbeat("gw-1", 41_000)
    assert (cleared.kind, cleared.rule) == ("cleared", "gateway_offline")


def test_advance_makes_a_late_batch_heard_now_not_at_the_last_tick() -> None:
    engine = engine_with(SPINDLE)
    assert engine.tick(0) == []
    # No tick for 100 s (a rebalance); then a batch received long ago by its gateway arrives.
    engine.advance(100_000)
    engine.observe(reading(5_000, {"spindle_temp_c": 50.0}))
    assert engine.tick(160_000) == []  # 60 s from when the hub heard it: not yet
    (raised,) = engine.tick(160_001)
    assert raised.rule == DEVICE_OFFLINE
