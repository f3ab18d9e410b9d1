"""Alert rules, rule sets and the transitions the engine emits. Pure data: no I/O, no clock.

Every rule validates itself on construction, so a `RuleSet` that exists is a usable one; the
YAML loader only translates and reports where in which file a value came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from protocol.models import METRIC_NAME_PATTERN

Severity = Literal["warning", "critical"]
TransitionKind = Literal["raised", "updated", "cleared"]
Direction = Literal["rising", "falling", "both"]

DEVICE_OFFLINE: Final = "device_offline"
GATEWAY_OFFLINE: Final = "gateway_offline"
BUFFER_RUNWAY: Final = "gateway_buffer_runway"  # hub.rules.runway

_RANK: Final[dict[Severity | None, int]] = {None: 0, "warning": 1, "critical": 2}
_METRIC_RE: Final = re.compile(METRIC_NAME_PATTERN)
_RULE_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def severity_rank(severity: Severity | None) -> int:
    """0 for no alert, 1 for a warning, 2 for a critical alert."""
    return _RANK[severity]


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One change in an alert's life. Field names are persisted: change them with the store."""

    kind: TransitionKind
    device_id: str | None  # None for gateway alerts
    gateway_id: str | None
    rule: str  # stable id: "cnc_spindle.spindle_temp_c.threshold", "device_offline", ...
    severity: Severity  # a "cleared" transition carries the severity of the alert it ends
    metric: str | None
    value: float | None  # booleans as 1.0 / 0.0
    message: str
    ts: int  # epoch ms


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert that is open right now: what `AlertEngine.open_alerts` lists and `restore` takes."""

    device_id: str | None
    gateway_id: str | None
    rule: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """How far back inside a limit a value must come before its alert eases or clears.

    Absolute (in the metric's unit) or a percentage of the limit's magnitude.
    """

    amount: float = 0.0
    percent: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount < 0:
            raise ValueError(f"hysteresis must be a finite number >= 0, got {self.amount}")
        if self.percent and self.amount >= 100:
            raise ValueError(f"hysteresis percentage must be below 100%, got {self.amount}%")

    def margin(self, limit: float) -> float:
        return abs(limit) * self.amount / 100.0 if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{self.amount:g}"


NO_HYSTERESIS: Final = Hysteresis()


def _check_ids(rule_id: str, metric: str, when: str | None) -> None:
    if not _RULE_ID_RE.match(rule_id):
        raise ValueError(f"rule id {rule_id!r} must be dot-separated [a-z][a-z0-9_]* parts")
    if not _METRIC_RE.match(metric):
        raise ValueError(f"metric {metric!r} is not a valid metric name ([a-z][a-z0-9_]{{0,63}})")
    if when is not None and not _METRIC_RE.match(when):
        raise ValueError(f"when {when!r} is not a valid metric name")


def _check_severity(severity: str) -> None:
    if severity not in ("warning", "critical"):
        raise ValueError(f"severity must be 'warning' or 'critical', got {severity!r}")


def _check_clear_after(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"clear_after_s must be a finite number >= 0, got {seconds}")


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")


@dataclass(frozen=True, slots=True)
class Threshold:
    """Numeric limits: above `warn_high`/`crit_high`, below `warn_low`/`crit_low` (strictly).

    An open alert eases (critical -> warning, an "updated" transition) or clears only once the
    value is back inside the limit by the hysteresis margin, so noise at a limit cannot flap it,
    and, with `clear_after_s`, only once it has stayed there that long (measured on reading
    timestamps), so a signal that swings through its whole range every cycle (a press's ram
    pressure) keeps one alert open instead of raising one per stroke.
    """

    id: str
    metric: str
    warn_high: float | None = None
    crit_high: float | None = None
    warn_low: float | None = None
    crit_low: float | None = None
    hysteresis: Hysteresis = NO_HYSTERESIS
    clear_after_s: float = 0.0  # an easing or clearing must hold this long before it happens
    when: str | None = None  # evaluate only while this boolean metric is true

    def __post_init__(self) -> None:
        _check_ids(self.id, self.metric, self.when)
        _check_clear_after(self.clear_after_s)
        for name in ("warn_high", "crit_high", "warn_low", "crit_low"):
            _finite(name, getattr(self, name))
        if not self.highs() and not self.lows():
            raise ValueError(
                "a threshold needs at least one of warn_high, crit_high, warn_low, crit_low"
            )
        if (
            self.warn_high is not None
            and self.crit_high is not None
            and not self.warn_high < self.crit_high
        ):
            raise ValueError(
                f"warn_high ({self.warn_high:g}) must be below crit_high ({self.crit_high:g})"
            )
        if (
            self.warn_low is not None
            and self.crit_low is not None
            and not self.crit_low < self.warn_low
        ):
            raise ValueError(
                f"crit_low ({self.crit_low:g}) must be below warn_low ({self.warn_low:g})"
            )
        for _, high in self.highs():
            for _, low in self.lows():
                # Eased limits must not overlap either, or one value would hold both sides.
                if not high - self.hysteresis.margin(high) > low + self.hysteresis.margin(low):
                    raise ValueError(
                        f"high limit {high:g} and low limit {low:g} are closer than "
                        f"twice the hysteresis ({self.hysteresis})"
                    )

    def highs(self) -> tuple[tuple[Severity, float], ...]:
        """(severity, limit) pairs above which the value alerts, critical first."""
        pairs: list[tuple[Severity, float]] = []
        if self.crit_high is not None:
            pairs.append(("critical", self.crit_high))
        if self.warn_high is not None:
            pairs.append(("warning", self.warn_high))
        return tuple(pairs)

    def lows(self) -> tuple[tuple[Severity, float], ...]:
        """(severity, limit) pairs below which the value alerts, critical first."""
        pairs: list[tuple[Severity, float]] = []
        if self.crit_low is not None:
            pairs.append(("critical", self.crit_low))
        if self.warn_low is not None:
            pairs.append(("warning", self.warn_low))
        return tuple(pairs)


@dataclass(frozen=True, slots=True)
class FlagThreshold:
    """A boolean metric alerts while it equals `equals` (e.g. `jammed` is true).

    Kept apart from `Threshold`: limits and hysteresis mean nothing for a flag.
    """

    id: str
    metric: str
    equals: bool = True
    severity: Severity = "warning"
    when: str | None = None

    def __post_init__(self) -> None:
        _check_ids(self.id, self.metric, self.when)
        _check_severity(self.severity)
        if not isinstance(self.equals, bool):
            raise ValueError(f"equals must be true or false, got {self.equals!r}")


@dataclass(frozen=True, slots=True)
class RateOfChange:
    """The metric changes faster than `max_per_s` (units per second).

    The rate is measured from the oldest to the newest sample of the window: the last
    `window_samples` samples, or the samples of the last `window_s` seconds (which must span at
    least half the window, so a burst after a gap is not divided by a tiny interval).
    """

    id: str
    metric: str
    max_per_s: float
    window_samples: int | None = None
    window_s: float | None = None
    direction: Direction = "rising"
    severity: Severity = "warning"
    hysteresis: Hysteresis = NO_HYSTERESIS
    clear_after_s: float = 0.0
    when: str | None = None

    def __post_init__(self) -> None:
        _check_ids(self.id, self.metric, self.when)
        _check_severity(self.severity)
        if not (math.isfinite(self.max_per_s) and self.max_per_s > 0):
            raise ValueError(f"max_per_s must be a finite number > 0, got {self.max_per_s}")
        if (self.window_samples is None) == (self.window_s is None):
            raise ValueError("give exactly one of window_samples and window_s")
        if self.window_samples is not None and self.window_samples < 2:
            raise ValueError(f"window_samples must be at least 2, got {self.window_samples}")
        if self.window_s is not None and not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"window_s must be a finite number > 0, got {self.window_s}")
        if self.direction not in ("rising", "falling", "both"):
            raise ValueError(f"direction must be rising, falling or both, got {self.direction!r}")
        _check_clear_after(self.clear_after_s)
        if self.hysteresis.margin(self.max_per_s) >= self.max_per_s:
            raise ValueError(f"hysteresis ({self.hysteresis}) must be below max_per_s")


@dataclass(frozen=True, slots=True)
class Flatline:
    """`samples` identical consecutive values: a stuck sensor. Clears on the first change."""

    id: str
    metric: str
    samples: int
    severity: Severity = "warning"
    when: str | None = None

    def __post_init__(self) -> None:
        _check_ids(self.id, self.metric, self.when)
        _check_severity(self.severity)
        if self.samples < 2:
            raise ValueError(f"samples must be at least 2, got {self.samples}")


Rule = Threshold | FlagThreshold | RateOfChange | Flatline


@dataclass(frozen=True, slots=True)
class Offline:
    """No data for `after_s` seconds raises "device_offline"; the next reading clears it.

    `after_s=None` means the engine's default (`HUB_DEVICE_OFFLINE_AFTER_S`).
    """

    after_s: float | None = None
    severity: Severity = "critical"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if self.after_s is not None and not (math.isfinite(self.after_s) and self.after_s > 0):
            raise ValueError(f"after_s must be a finite number > 0, got {self.after_s}")


@dataclass(frozen=True, slots=True)
class TypeRules:
    """The rules of one device type; `offline=None` disables offline detection for it."""

    rules: tuple[Rule, ...] = ()
    offline: Offline | None = Offline()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)


@dataclass(frozen=True, slots=True)
class DeviceRules:
    """One device's rules: its type's, with the device's own overrides layered over them.

    They apply only while the device reports `device_type`; reporting another type, it gets
    that type's rules (an override written for a press means nothing to a conveyor).
    """

    device_type: str
    rules: TypeRules


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules per device type; `default` applies to every type not listed (and to no type);
    `devices` holds the devices with overrides of their own."""

    types: Mapping[str, TypeRules] = field(default_factory=dict)
    default: TypeRules = TypeRules()
    devices: Mapping[str, DeviceRules] = field(default_factory=dict)

    def for_type(self, device_type: str | None) -> TypeRules:
        if device_type is None:
            return self.default
        return self.types.get(device_type, self.default)

    def for_device(self, device_id: str, device_type: str | None) -> TypeRules:
        """The rules of one device reporting `device_type`: its overrides if it has any for
        that type, else the type's."""
        own = self.devices.get(device_id)
        if own is not None and own.device_type == device_type:
            return own.rules
        return self.for_type(device_type)
