"""Alert lifecycle: readings, heartbeats, status messages and clock ticks in; transitions out.

Pure and synchronous: no I/O and no clock of its own. The caller passes the time with `tick`,
persists and publishes the transitions, and feeds messages in the order it consumes them.

Guarantees:

* One open alert per (device, rule), and per gateway: a condition that persists emits nothing;
  a change of severity emits one "updated"; the end emits one "cleared".
* Out-of-order and repeated samples (`ts` not newer than the last one a rule evaluated for that
  device) are ignored by the metric rules, so a replayed or late reading never flaps an alert
  and never counts twice towards a flatline. They still prove the device is alive.
* Liveness is measured on the hub's clock: a message counts as heard at the later of the latest
  `tick` and its gateway receive time, never at the device's own timestamp, which may be skewed
  or be hours old when a gateway drains its buffer after an outage.
* Gateway outage: a gateway that sent heartbeats and stops for `gateway_offline_after_s` raises
  one "gateway_offline" and holds back "device_offline" for every device last seen through it.
  When its heartbeat returns, the alert clears and its devices get a full offline period from
  that moment before any of them is reported.
* Memory per device is bounded by its rules (rate windows are ring buffers).
* One rule failing on one reading (a bug meeting an odd value) skips that evaluation only:
  it is counted in `evaluation_errors_total` and logged, and the other rules still run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from hub.rules._checks import Check, FlagCheck, Verdict, fmt, make_check
from hub.rules.model import (
    BUFFER_RUNWAY,
    DEVICE_OFFLINE,
    GATEWAY_OFFLINE,
    AlertTransition,
    OpenAlert,
    RateOfChange,
    Rule,
    RuleSet,
    Severity,
    Threshold,
    TransitionKind,
    TypeRules,
    severity_rank,
)
from hub.rules.runway import runway_transition
from protocol.models import NormalisedReading

DeviceState = Literal["online", "offline"]  # as in protocol.models.DeviceStatus

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slot:
    """One rule on one device: its check's memory and the alert it holds open."""

    rule: Rule
    check: Check
    active: Severity | None = None
    last_ts: int | None = None
    calm_since_ts: int | None = None  # first sample of the current easing or clearing streak
    # The gateway an open alert was raised with: the store keys alerts by (device, gateway,
    # rule), so its updates and its clearing must carry the same one even if the device moved.
    gateway_id: str | None = None
    # Derived from the rule once, not per sample: how long easing waits, and for a threshold
    # the band of values that raise nothing (most samples, checked without building a verdict).
    hold_ms: int = field(init=False)
    band: tuple[float, float] | None = field(init=False)

    def __post_init__(self) -> None:
        rule = self.rule
        hold_s = rule.clear_after_s if isinstance(rule, Threshold | RateOfChange) else 0.0
        self.hold_ms = round(hold_s * 1000)
        # Not for a rule checked only `when` a flag is true: that flag decides first.
        self.band = quiet_band(rule) if isinstance(rule, Threshold) and rule.when is None else None


def quiet_band(rule: Threshold) -> tuple[float, float]:
    """The values (inclusive: the limits are strict) at which the threshold raises nothing."""
    highs = [limit for _, limit in rule.highs()]
    lows = [limit for _, limit in rule.lows()]
    return (max(lows, default=-math.inf), min(highs, default=math.inf))


@dataclass(slots=True)
class _Device:
    device_id: str
    heard_ms: int
    gateway_id: str | None = None
    device_type: str | None = None
    rules: TypeRules | None = None  # None until the first reading says which type it is
    slots: list[_Slot] = field(default_factory=list)
    offline: Severity | None = None  # the open device_offline alert, if any
    offline_gateway_id: str | None = None
    offline_reported_ts: int | None = None  # set when an explicit status raised it
    latest_ts: int | None = None  # newest reading ts
    # rule -> (severity, gateway_id) of restored alerts waiting for the device's type
    restored: dict[str, tuple[Severity, str | None]] = field(default_factory=dict)


@dataclass(slots=True)
class _Gateway:
    gateway_id: str
    heard_ms: int
    offline: bool = False
    devices: set[str] = field(default_factory=set)
    # Owned: its heartbeats' partition is this worker's, so this worker raises and clears its
    # gateway_offline. Not owned: known from the shared view, only to hold back its devices.
    owned: bool = True
    runway_low: bool = False  # its buffer-runway warning is open


def _positive_ms(name: str, seconds: float) -> int:
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {seconds}")
    return round(seconds * 1000)


class AlertEngine:
    """Evaluates a `RuleSet` over the message stream and keeps every alert's lifecycle."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        device_offline_after_s: float,
        gateway_offline_after_s: float,
        buffer_runway_warn_s: float = 0.0,
    ) -> None:
        self._rules = rules
        self._runway_warn_s = buffer_runway_warn_s  # 0: no buffer-runway alerts
        self._device_after_ms = _positive_ms("device_offline_after_s", device_offline_after_s)
        self._gateway_after_ms = _positive_ms("gateway_offline_after_s", gateway_offline_after_s)
        self._clock_ms = 0
        self._devices: dict[str, _Device] = {}
        self._gateways: dict[str, _Gateway] = {}
        self.evaluation_errors_total = 0

    # -- inputs ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> None:
        """Move the clock without evaluating anything: what the hub hears now is heard now,
        even when ticks were held up (a rebalance, a busy loop)."""
        self._clock_ms = max(self._clock_ms, now_ms)

    def observe(self, reading: NormalisedReading) -> list[AlertTransition]:
        """Evaluate one normalised reading."""
        out: list[AlertTransition] = []
        device = self._device(reading.device_id, reading.received_ts)
        self._link(device, reading.gateway_id)
        device.heard_ms = max(device.heard_ms, self._clock_ms, reading.received_ts)
        device.latest_ts = (
            reading.ts if device.latest_ts is None else max(device.latest_ts, reading.ts)
        )
        if device.rules is None or reading.type != device.device_type:
            self._retype(device, reading.type, reading.ts, out)
        if device.offline is not None and (
            device.offline_reported_ts is None or reading.ts >= device.offline_reported_ts
        ):
            out.append(
                self._device_offline(
                    device, "cleared", device.offline, f"{device.device_id} sending data again"
                )
            )
            device.offline = None
            device.offline_reported_ts = None
        ts, metrics = reading.ts, reading.metrics
        for slot in device.slots:
            if slot.active is None and (band := slot.band) is not None:
                # Most samples of a threshold rule, decided here without a call: its metric
                # missing (no opinion), or in order and inside the quiet band (the sample is
                # taken, nothing raised). Anything else goes to `_evaluate`.
                value = metrics.get(slot.rule.metric)
                if value is None:
                    continue
                if (
                    not isinstance(value, bool)
                    and band[0] <= value <= band[1]
                    and (slot.last_ts is None or ts > slot.last_ts)
                ):
                    slot.last_ts = ts
                    slot.calm_since_ts = None
                    continue
            try:
                transition = self._evaluate(device, slot, reading)
            # The poison boundary of rule evaluation: one rule's failure on one reading must
            # neither stop the worker nor keep the device's other rules from running.
            except Exception as exc:  # noqa: BLE001 - logged and counted
                self.evaluation_errors_total += 1
                log.error(
                    "rule_evaluation_failed",
                    extra={
                        "device_id": reading.device_id,
                        "rule": slot.rule.id,
                        "ts": reading.ts,
                        "error": f"{type(exc).__name__}: {exc}",
                    },
                )
                continue
            if transition is not None:
                out.append(transition)
        return out

    def observe_heartbeat(
        self, gateway_id: str, ts_ms: int, *, shared: bool = False
    ) -> list[AlertTransition]:
        """A gateway's edge-metrics record: the gateway is alive.

        `shared`: heard by another worker of the group (from the hub's shared view, Redis),
        not from this worker's own partitions. It keeps this worker's devices of that gateway
        held back during an outage, but this worker neither raises nor clears the gateway's
        own alert unless it owns the gateway.
        """
        if shared:
            heard = ts_ms
            if gateway_id not in self._gateways:
                self._gateway(gateway_id, heard).owned = False
                return []
            if heard <= self._gateways[gateway_id].heard_ms:
                return []  # nothing newer than what this worker knows
        else:
            heard = max(self._clock_ms, ts_ms)
            if gateway_id not in self._gateways:
                self._gateway(gateway_id, heard)
                return []
            self._gateways[gateway_id].owned = True
        gateway = self._gateways[gateway_id]
        gateway.heard_ms = max(gateway.heard_ms, heard)
        if not gateway.offline:
            return []
        gateway.offline = False
        # Held-back devices get a full offline period from the gateway's return.
        for device_id in gateway.devices:
            device = self._devices[device_id]
            device.heard_ms = max(device.heard_ms, gateway.heard_ms)
        if not gateway.owned:
            return []
        return [
            AlertTransition(
                kind="cleared",
                device_id=None,
                gateway_id=gateway_id,
                rule=GATEWAY_OFFLINE,
                severity="critical",
                metric=None,
                value=None,
                message=f"gateway {gateway_id} heartbeat again",
                ts=gateway.heard_ms,
            )
        ]

    def observe_runway(
        self, gateway_id: str, runway_s: float | None, ts_ms: int
    ) -> list[AlertTransition]:
        """The buffer runway a gateway reported in its edge metrics (None: not growing).

        Fed only by the worker that owns the gateway's edge-metrics partition, like its
        heartbeat. The alert stays open while the gateway is silent: nothing says the buffer
        stopped filling.
        """
        gateway = self._gateway(gateway_id, max(self._clock_ms, ts_ms))
        transition = runway_transition(
            gateway_id,
            runway_s,
            self._runway_warn_s,
            is_open=gateway.runway_low,
            ts=max(self._clock_ms, ts_ms),
        )
        if transition is None:
            return []
        gateway.runway_low = transition.kind == "raised"
        return [transition]

    def observe_status(
        self, device_id: str, gateway_id: str, state: DeviceState, ts_ms: int
    ) -> list[AlertTransition]:
        """A device's status message; an explicit "offline" raises device_offline at once.

        It is ignored when the device has sent data newer than the status (a stale retained
        message), when its gateway is in an outage (held back like the silence), and when
        offline detection is disabled for its type. "online" only proves the device alive; its
        next reading clears an open device_offline.
        """
        device = self._device(device_id, ts_ms)
        self._link(device, gateway_id)
        if state != "offline":
            device.heard_ms = max(device.heard_ms, self._clock_ms, ts_ms)
            return []
        newest = device.latest_ts
        if device.offline is not None or (newest is not None and newest > ts_ms):
            return []
        gateway = self._gateways.get(gateway_id)
        offline_rule = self._type_rules(device).offline
        if (gateway is not None and gateway.offline) or offline_rule is None:
            return []
        device.offline = offline_rule.severity
        device.offline_reported_ts = ts_ms
        return [
            self._device_offline(
                device, "raised", device.offline, f"{device_id} reported offline", ts=ts_ms
            )
        ]

    def tick(self, now_ms: int) -> list[AlertTransition]:
        """Advance the clock; raise gateway_offline and device_offline where data stopped."""
        self._clock_ms = max(self._clock_ms, now_ms)
        now = self._clock_ms
        out: list[AlertTransition] = []
        for gateway in self._gateways.values():
            if gateway.offline or now - gateway.heard_ms <= self._gateway_after_ms:
                continue
            gateway.offline = True
            if not gateway.owned:
                continue  # its owner raises the alert; here its devices are held back
            silent = sum(1 for d in gateway.devices if self._devices[d].offline is None)
            out.append(
                AlertTransition(
                    kind="raised",
                    device_id=None,
                    gateway_id=gateway.gateway_id,
                    rule=GATEWAY_OFFLINE,
                    severity="critical",
                    metric=None,
                    value=None,
                    message=(
                        f"no heartbeat from gateway {gateway.gateway_id} for "
                        f"{fmt((now - gateway.heard_ms) / 1000)} s; offline alerts of its "
                        f"{silent} device(s) held back"
                    ),
                    ts=now,
                )
            )
        for device in self._devices.values():
            if device.offline is not None:
                continue
            offline_rule = self._type_rules(device).offline
            if offline_rule is None:
                continue
            after_ms = (
                self._device_after_ms
                if offline_rule.after_s is None
                else round(offline_rule.after_s * 1000)
            )
            if now - device.heard_ms <= after_ms or self._held_back(device):
                continue
            device.offline = offline_rule.severity
            device.offline_reported_ts = None
            message = f"no data from {device.device_id} for {fmt((now - device.heard_ms) / 1000)} s"
            out.append(self._device_offline(device, "raised", device.offline, message, ts=now))
        return out

    # -- lifecycle helpers for the caller ----------------------------------------------------

    def open_alerts(self) -> list[OpenAlert]:
        """Every alert open right now, gateways first, then devices in first-seen order."""
        alerts = [
            OpenAlert(None, g.gateway_id, GATEWAY_OFFLINE, "critical")
            for g in self._gateways.values()
            if g.offline
        ]
        alerts += [
            OpenAlert(None, g.gateway_id, BUFFER_RUNWAY, "warning")
            for g in self._gateways.values()
            if g.runway_low
        ]
        for device in self._devices.values():
            if device.offline is not None:
                alerts.append(
                    OpenAlert(
                        device.device_id, device.offline_gateway_id, DEVICE_OFFLINE, device.offline
                    )
                )
            alerts.extend(
                OpenAlert(device.device_id, slot.gateway_id, slot.rule.id, slot.active)
                for slot in device.slots
                if slot.active is not None
            )
            alerts.extend(
                OpenAlert(device.device_id, gateway_id, rule, severity)
                for rule, (severity, gateway_id) in device.restored.items()
            )
        return alerts

    def restore(self, alerts: Iterable[OpenAlert], *, now_ms: int) -> None:
        """Adopt alerts still open in the store after a restart, so none is raised twice.

        A restored metric alert eases or clears by its rule on the device's next readings; one
        whose rule no longer applies to the device is cleared by its first reading.
        """
        self._clock_ms = max(self._clock_ms, now_ms)
        for alert in alerts:
            if alert.device_id is None:
                if alert.rule in (GATEWAY_OFFLINE, BUFFER_RUNWAY) and alert.gateway_id is not None:
                    gateway = self._gateway(alert.gateway_id, self._clock_ms)
                    if alert.rule == GATEWAY_OFFLINE:
                        gateway.offline = True
                    else:
                        gateway.runway_low = True
                continue
            device = self._device(alert.device_id, self._clock_ms)
            if alert.gateway_id is not None:
                self._link(device, alert.gateway_id)
            if alert.rule == DEVICE_OFFLINE:
                device.offline = alert.severity
                device.offline_gateway_id = alert.gateway_id
                continue
            for slot in device.slots:
                if slot.rule.id == alert.rule:
                    slot.active, slot.gateway_id = alert.severity, alert.gateway_id
                    break
            else:
                device.restored[alert.rule] = (alert.severity, alert.gateway_id)

    def forget(self, device_id: str | None, rule: str, *, gateway_id: str | None = None) -> None:
        """Drop an open alert the operator cleared by hand, without a transition.

        If its condition still holds, the rule raises it again on the next sample (offline
        alerts: after a full offline period from the engine's clock).
        """
        if device_id is None:
            gateway = self._gateways.get(gateway_id or "")
            if gateway is not None and rule == GATEWAY_OFFLINE:
                gateway.offline = False
                gateway.heard_ms = max(gateway.heard_ms, self._clock_ms)
            elif gateway is not None and rule == BUFFER_RUNWAY:
                gateway.runway_low = False
            return
        device = self._devices.get(device_id)
        if device is None:
            return
        if rule == DEVICE_OFFLINE:
            device.offline = None
            device.offline_reported_ts = None
            device.heard_ms = max(device.heard_ms, self._clock_ms)
            return
        device.restored.pop(rule, None)
        for slot in device.slots:
            if slot.rule.id == rule:
                slot.active = None

    def retain(
        self, keep_device: Callable[[str], bool], keep_gateway: Callable[[str], bool]
    ) -> tuple[int, int]:
        """Forget the devices this worker no longer owns (their partitions went to another
        worker of the group), without a transition: their open alerts stay in the store for the
        new owner, which restores them. Gateways are kept, owned or not: their liveness still
        holds back this worker's devices. Returns how many devices were forgotten and gateways
        disowned. A device that sends here again is simply known again."""
        gone_devices = [d for d in self._devices if not keep_device(d)]
        for device_id in gone_devices:
            device = self._devices.pop(device_id)
            gateway = self._gateways.get(device.gateway_id or "")
            if gateway is not None:
                gateway.devices.discard(device_id)
        disowned = 0
        for gateway in self._gateways.values():
            owned = keep_gateway(gateway.gateway_id)
            if gateway.owned and not owned:
                disowned += 1
            gateway.owned = owned
        return len(gone_devices), disowned

    def replace_rules(self, rules: RuleSet) -> list[AlertTransition]:
        """Swap in new rules while running (an edit in the dashboard).

        Unchanged rules keep their state (rate windows, flatline runs, hold timers); an edited
        rule keeps its open alert, re-judged by the new limits on the device's next sample; a
        rule that no longer applies (disabled, removed) clears its open alert now.
        """
        self._rules = rules
        out: list[AlertTransition] = []
        for device in self._devices.values():
            if device.rules is not None:
                ts = max(self._clock_ms, device.latest_ts or 0)
                self._retype(device, device.device_type, ts, out)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _device(self, device_id: str, heard_ms: int) -> _Device:
        device = self._devices.get(device_id)
        if device is None:
            device = _Device(device_id, max(self._clock_ms, heard_ms))
            self._devices[device_id] = device
        return device

    def _gateway(self, gateway_id: str, heard_ms: int) -> _Gateway:
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            gateway = self._gateways[gateway_id] = _Gateway(gateway_id, heard_ms)
            # Devices seen before the gateway's first heartbeat are its devices too.
            gateway.devices.update(
                d.device_id for d in self._devices.values() if d.gateway_id == gateway_id
            )
        return gateway

    def _link(self, device: _Device, gateway_id: str) -> None:
        if device.gateway_id == gateway_id:
            return
        if device.gateway_id is not None and device.gateway_id in self._gateways:
            self._gateways[device.gateway_id].devices.discard(device.device_id)
        device.gateway_id = gateway_id
        if gateway_id in self._gateways:
            self._gateways[gateway_id].devices.add(device.device_id)

    def _type_rules(self, device: _Device) -> TypeRules:
        return device.rules if device.rules is not None else self._rules.for_type(None)

    def _held_back(self, device: _Device) -> bool:
        """Is the device's silence probably its gateway's? Then wait for the gateway's verdict.

        Yes while its gateway is in an outage, and while the gateway (known by its heartbeats)
        has been silent at least as long as the device: that matters when a device type's
        offline period is shorter than the gateway's, and otherwise delays a device's alert by
        at most one heartbeat interval.
        """
        gateway = self._gateways.get(device.gateway_id or "")
        if gateway is None:
            return False
        return gateway.offline or gateway.heard_ms <= device.heard_ms

    def _retype(
        self, device: _Device, device_type: str | None, ts: int, out: list[AlertTransition]
    ) -> None:
        """Build the device's rule slots for its (new) type, clearing alerts that lost a rule."""
        type_rules = self._rules.for_device(device.device_id, device_type)
        keep = {slot.rule.id: slot for slot in device.slots}
        slots: list[_Slot] = []
        for rule in type_rules.rules:
            slot = keep.pop(rule.id, None) or _Slot(rule, make_check(rule))
            if slot.rule != rule:
                # Edited: a fresh check under the new limits, but the same open alert, which
                # the next sample eases, clears or keeps by the new rule.
                slot = _Slot(
                    rule, make_check(rule), slot.active, slot.last_ts, None, slot.gateway_id
                )
            restored = device.restored.pop(rule.id, None)
            if restored is not None:
                slot.active, slot.gateway_id = restored
            slots.append(slot)
        gone: list[tuple[str, Severity, str | None, str | None]] = [
            (s.rule.id, s.active, s.gateway_id, s.rule.metric)
            for s in keep.values()
            if s.active is not None
        ]
        gone += [(rule, sev, gw, None) for rule, (sev, gw) in device.restored.items()]
        for rule_id, severity, gateway_id, metric in gone:
            out.append(
                AlertTransition(
                    kind="cleared",
                    device_id=device.device_id,
                    gateway_id=gateway_id,
                    rule=rule_id,
                    severity=severity,
                    metric=metric,
                    value=None,
                    message=f"rule {rule_id} no longer applies to {device.device_id}",
                    ts=ts,
                )
            )
        device.restored.clear()
        device.slots = slots
        device.device_type = device_type
        device.rules = type_rules

    def _evaluate(
        self, device: _Device, slot: _Slot, reading: NormalisedReading
    ) -> AlertTransition | None:
        rule = slot.rule
        ts = reading.ts
        if slot.last_ts is not None and ts <= slot.last_ts:
            return None  # out of order or a replay: must not move the rule's state
        metrics = reading.metrics
        if rule.when is not None:
            gate = metrics.get(rule.when)
            if not isinstance(gate, bool):
                return None  # the condition is unknown in this reading: no opinion
            if not gate:
                slot.last_ts = ts
                slot.check.reset()
                paused = Verdict(None, None, f"{rule.metric} not checked: {rule.when} is false")
                return self._apply(device, slot, paused, ts, hold_ms=0)
        value = metrics.get(rule.metric)
        if value is None:
            return None
        verdict: Verdict | None
        if isinstance(slot.check, FlagCheck):
            if not isinstance(value, bool):
                return None
            slot.last_ts = ts
            verdict = slot.check.update(ts, value, slot.active)
        else:
            if isinstance(value, bool):
                return None
            slot.last_ts = ts
            band = slot.band
            if band is not None and slot.active is None and band[0] <= value <= band[1]:
                # No alert open and none wanted: what `_apply` concludes, without a verdict.
                slot.calm_since_ts = None
                return None
            verdict = slot.check.update(ts, value, slot.active)
        if verdict is None:
            return None
        if verdict.severity is None and slot.active is None:
            slot.calm_since_ts = None  # what `_apply` concludes: nothing open, nothing wanted
            return None
        return self._apply(device, slot, verdict, ts, hold_ms=slot.hold_ms)

    @staticmethod
    def _apply(
        device: _Device, slot: _Slot, verdict: Verdict, ts: int, *, hold_ms: int
    ) -> AlertTransition | None:
        before, after = slot.active, verdict.severity
        if severity_rank(after) < severity_rank(before) and hold_ms > 0:
            # Easing or clearing waits until the calm has lasted hold_ms without a relapse.
            if slot.calm_since_ts is None:
                slot.calm_since_ts = ts
            if ts - slot.calm_since_ts < hold_ms:
                return None
        slot.calm_since_ts = None
        if before == after:
            return None
        slot.active = after
        if before is None:
            slot.gateway_id = device.gateway_id
        kind: TransitionKind = (
            "raised" if before is None else "cleared" if after is None else "updated"
        )
        severity = after if after is not None else before
        assert severity is not None
        return AlertTransition(
            kind=kind,
            device_id=device.device_id,
            rule=slot.rule.id,
            severity=severity,
            gateway_id=slot.gateway_id,
            metric=slot.rule.metric,
            value=verdict.value,
            message=f"{verdict.message} ({device.device_id})",
            ts=ts,
        )

    def _device_offline(
        self,
        device: _Device,
        kind: TransitionKind,
        severity: Severity,
        message: str,
        *,
        ts: int | None = None,
    ) -> AlertTransition:
        if kind == "raised":
            device.offline_gateway_id = device.gateway_id
        return AlertTransition(
            kind=kind,
            device_id=device.device_id,
            gateway_id=device.offline_gateway_id,
            rule=DEVICE_OFFLINE,
            severity=severity,
            metric=None,
            value=None,
            message=message,
            ts=device.heard_ms if ts is None else ts,
        )
