"""One check per rule kind: a sample in, the severity the rule wants now out. Pure.

A check never decides on transitions; it says which severity the metric deserves (None: none)
given the alert that is open, and the engine turns a change of severity into a transition.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Final

from hub.rules.model import (
    FlagThreshold,
    Flatline,
    RateOfChange,
    Rule,
    Severity,
    Threshold,
    severity_rank,
)

# Upper bound of samples a time-window rate check keeps per device; a device sampling faster
# than this over the window gets its rate measured over the shorter span it kept.
RATE_BUFFER_MAX: Final = 1024


def fmt(value: float) -> str:
    """A number for a message: no trailing zeros, no exponent for plant-sized values."""
    if not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": never raised on, whatever a rule computed
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


class Verdict:
    """The severity a sample deserves, and why. Every sample gets one but few turn into a
    transition, so `message` (without the device suffix) may be given as a function, worded
    only when read."""

    __slots__ = ("_message", "severity", "value")

    def __init__(
        self, severity: Severity | None, value: float | None, message: str | Callable[[], str]
    ) -> None:
        self.severity = severity
        self.value = value
        self._message = message

    @property
    def message(self) -> str:
        if not isinstance(self._message, str):
            self._message = self._message()
        return self._message


class ThresholdCheck:
    __slots__ = ("rule",)

    def __init__(self, rule: Threshold) -> None:
        self.rule = rule

    def reset(self) -> None:
        pass

    def update(self, ts: int, value: float, active: Severity | None) -> Verdict:
        raw = self._level(value, eased=False, max_rank=2)
        level = raw
        if severity_rank(raw[0] if raw else None) < severity_rank(active):
            # Easing or clearing: the open level (or any below it) holds while the value is
            # still beyond its limit minus the hysteresis margin.
            level = self._level(value, eased=True, max_rank=severity_rank(active))
        metric = self.rule.metric
        if level is None:
            return Verdict(None, value, lambda: f"{metric} {fmt(value)} back to normal")
        severity, limit, side = level
        if level != raw:
            return Verdict(
                severity,
                value,
                lambda: f"{metric} {fmt(value)} still within hysteresis of {severity} {fmt(limit)}",
            )
        return Verdict(
            severity, value, lambda: f"{metric} {fmt(value)} {side} {severity} {fmt(limit)}"
        )

    def _level(
        self, value: float, *, eased: bool, max_rank: int
    ) -> tuple[Severity, float, str] | None:
        hysteresis = self.rule.hysteresis
        for severity, limit in self.rule.highs():
            if severity_rank(severity) > max_rank:
                continue
            edge = limit - hysteresis.margin(limit) if eased else limit
            if value > edge:
                return severity, limit, "above"
        for severity, limit in self.rule.lows():
            if severity_rank(severity) > max_rank:
                continue
            edge = limit + hysteresis.margin(limit) if eased else limit
            if value < edge:
                return severity, limit, "below"
        return None


class FlagCheck:
    __slots__ = ("rule",)

    def __init__(self, rule: FlagThreshold) -> None:
        self.rule = rule

    def reset(self) -> None:
        pass

    def update(self, ts: int, value: bool, active: Severity | None) -> Verdict:
        metric = self.rule.metric
        if value == self.rule.equals:
            return Verdict(
                self.rule.severity, float(value), lambda: f"{metric} is {str(value).lower()}"
            )
        return Verdict(None, float(value), lambda: f"{metric} is {str(value).lower()} again")


class FlatlineCheck:
    __slots__ = ("_run", "_value", "rule")

    def __init__(self, rule: Flatline) -> None:
        self.rule = rule
        self._value: float | None = None
        self._run = 0

    def reset(self) -> None:
        self._value = None
        self._run = 0

    def update(self, ts: int, value: float, active: Severity | None) -> Verdict | None:
        metric = self.rule.metric
        if self._value is None and active is not None:
            # An alert restored after a restart: this first value is the one it is stuck at.
            self._value, self._run = value, 1
            return None
        if value == self._value:
            self._run += 1
        else:
            self._value, self._run = value, 1
        run = self._run
        if run >= self.rule.samples:
            return Verdict(
                self.rule.severity,
                value,
                lambda: f"{metric} unchanged at {fmt(value)} for {run} samples",
            )
        return Verdict(None, value, lambda: f"{metric} changing again ({fmt(value)})")


class RateCheck:
    __slots__ = ("_samples", "rule")

    def __init__(self, rule: RateOfChange) -> None:
        self.rule = rule
        self._samples: deque[tuple[int, float]] = deque(
            maxlen=rule.window_samples or RATE_BUFFER_MAX
        )

    def reset(self) -> None:
        self._samples.clear()

    def update(self, ts: int, value: float, active: Severity | None) -> Verdict | None:
        rule = self.rule
        samples = self._samples
        samples.append((ts, value))
        if rule.window_samples is not None:
            if len(samples) < rule.window_samples:
                return None
        else:
            assert rule.window_s is not None
            window_ms = rule.window_s * 1000.0
            while ts - samples[0][0] > window_ms:
                samples.popleft()
            if ts - samples[0][0] < window_ms / 2:
                return None  # too short a span to divide by: keep whatever is open
        first_ts, first_value = samples[0]
        span_s = (ts - first_ts) / 1000.0
        if span_s <= 0:
            return None
        rate = (value - first_value) / span_s
        if not math.isfinite(rate):
            return None  # no opinion on a rate that overflowed: keep whatever is open
        signed = {"rising": rate, "falling": -rate, "both": abs(rate)}[rule.direction]
        limit = rule.max_per_s
        edge = limit - rule.hysteresis.margin(limit) if active is not None else limit
        if signed > edge:
            verb = "rising" if rate >= 0 else "falling"
            return Verdict(
                rule.severity,
                value,
                lambda: (
                    f"{rule.metric} {verb} {fmt(abs(rate))}/s over {fmt(round(span_s, 3))} s, "
                    f"limit {fmt(limit)}/s"
                ),
            )
        return Verdict(None, value, lambda: f"{rule.metric} rate back to {fmt(rate)}/s")


Check = ThresholdCheck | FlagCheck | FlatlineCheck | RateCheck


def make_check(rule: Rule) -> Check:
    if isinstance(rule, Threshold):
        return ThresholdCheck(rule)
    if isinstance(rule, FlagThreshold):
        return FlagCheck(rule)
    if isinstance(rule, Flatline):
        return FlatlineCheck(rule)
    return RateCheck(rule)
