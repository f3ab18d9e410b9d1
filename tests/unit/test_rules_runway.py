"""The gateway buffer-runway warning: raised below the threshold, cleared above it with a margin
or when the buffer stops growing; restored, listed and forgotten like gateway_offline."""

from __future__ import annotations

from hub.rules import BUFFER_RUNWAY, GATEWAY_OFFLINE, AlertEngine, OpenAlert, RuleSet
from hub.rules.runway import runway_low, runway_transition

WARN_S = 3600.0


def engine(warn_s: float = WARN_S) -> AlertEngine:
    return AlertEngine(
        RuleSet(),
        device_offline_after_s=60,
        gateway_offline_after_s=30,
        buffer_runway_warn_s=warn_s,
    )


def test_runway_low_has_a_clearing_margin_and_needs_a_growing_buffer() -> None:
    assert runway_low(3599, WARN_S, is_open=False)
    assert not runway_low(3600, WARN_S, is_open=False)
    assert runway_low(3900, WARN_S, is_open=True)  # within the 10% margin: stays open
    assert not runway_low(3960, WARN_S, is_open=True)
    assert not runway_low(None, WARN_S, is_open=True)  # not growing
    assert not runway_low(10, 0, is_open=False)  # 0 turns the alert off


def test_transition_is_a_gateway_warning_keyed_without_a_device() -> None:
    raised = runway_transition("gw-1", 1500.0, WARN_S, is_open=False, ts=5)
    assert raised is not None
    assert (raised.kind, raised.device_id, raised.gateway_id, raised.rule, raised.severity) == (
        "raised",
        None,
        "gw-1",
        BUFFER_RUNWAY,
        "warning",
    )
    assert (raised.metric, raised.value, raised.ts) == ("buffer_runway_s", 1500.0, 5)
    assert "full in 25 min" in raised.message
    assert "warning below 60 min" in raised.message
    assert runway_transition("gw-1", 1500.0, WARN_S, is_open=True, ts=6) is None
    cleared = runway_transition("gw-1", None, WARN_S, is_open=True, ts=7)
    assert cleared is not None
    assert cleared.kind == "cleared"
    assert "no longer growing" in cleared.message


def test_engine_raises_once_while_low_and_clears_on_recovery() -> None:
    e = engine()
    assert e.observe_heartbeat("gw-1", 0) == []
    assert e.observe_runway("gw-1", None, 0) == []
    raised = e.observe_runway("gw-1", 1200.0, 10_000)
    assert [(t.kind, t.rule) for t in raised] == [("raised", BUFFER_RUNWAY)]
    assert e.observe_runway("gw-1", 1100.0, 20_000) == []  # still low: nothing new
    assert e.open_alerts() == [OpenAlert(None, "gw-1", BUFFER_RUNWAY, "warning")]
    cleared = e.observe_runway("gw-1", None, 30_000)  # Kafka back: draining
    assert [(t.kind, t.rule, t.ts) for t in cleared] == [("cleared", BUFFER_RUNWAY, 30_000)]
    assert e.open_alerts() == []


def test_the_warning_stays_open_while_the_gateway_is_silent() -> None:
    e = engine()
    e.observe_heartbeat("gw-1", 0)
    e.observe_runway("gw-1", 600.0, 0)
    out = e.tick(60_000)
    assert [t.rule for t in out] == [GATEWAY_OFFLINE]
    assert OpenAlert(None, "gw-1", BUFFER_RUNWAY, "warning") in e.open_alerts()


def test_restored_warning_is_not_raised_again_and_clears_by_its_report() -> None:
    e = engine()
    e.restore([OpenAlert(None, "gw-1", BUFFER_RUNWAY, "warning")], now_ms=0)
    e.observe_heartbeat("gw-1", 1_000)
    assert e.observe_runway("gw-1", 10.0, 1_000) == []
    assert [t.kind for t in e.observe_runway("gw-1", 7200.0, 2_000)] == ["cleared"]


def test_forget_lets_a_low_runway_raise_again_and_zero_disables() -> None:
    e = engine()
    e.observe_runway("gw-1", 10.0, 0)
    e.forget(None, BUFFER_RUNWAY, gateway_id="gw-1")
    assert e.open_alerts() == []
    assert [t.kind for t in e.observe_runway("gw-1", 10.0, 1_000)] == ["raised"]
    off = engine(warn_s=0)
    assert off.observe_runway("gw-1", 1.0, 0) == []
