"""One simulated device: a machine model, its sequence counter and its faults. Pure."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import TypedDict

from edge_gateway.simulators.anomalies import (
    DROPOUT_MS,
    METRIC_KINDS,
    ActiveFault,
    AnomalyKind,
    AnomalyRecord,
    start_metric_fault,
)
from edge_gateway.simulators.catalog import METRICS
from edge_gateway.simulators.machines import Machine, Metrics, make_machine

# Kept per device for tests and demos; the runner logs and counts every fault anyway.
ANOMALY_HISTORY = 256
_ALL_KINDS = tuple(AnomalyKind)


class TelemetryPayload(TypedDict):
    """The JSON body published on the telemetry topic (protocol.models.DevicePayload)."""

    ts: int
    seq: int
    type: str
    metrics: Metrics


class SimulatedDevice:
    """Produces the device's next payload for a simulated time, or None while it is offline.

    Two independent random streams keep faults from disturbing the physics: `model_rng` drives
    the machine, `anomaly_rng` decides when and how it misbehaves.
    """

    def __init__(
        self,
        device_id: str,
        device_type: str,
        *,
        model_rng: random.Random,
        anomaly_rng: random.Random,
        anomaly_probability: float = 0.0,
        on_anomaly: Callable[[AnomalyRecord], None] | None = None,
    ) -> None:
        if not 0.0 <= anomaly_probability <= 1.0:
            raise ValueError(f"anomaly_probability must be in [0, 1], got {anomaly_probability}")
        self.device_id = device_id
        self.device_type = device_type
        self.machine: Machine = make_machine(device_type, model_rng)
        self.anomaly_probability = anomaly_probability
        self.on_anomaly = on_anomaly
        self.seq = 0
        self.offline_until_ms: int | None = None
        self.anomalies: deque[AnomalyRecord] = deque(maxlen=ANOMALY_HISTORY)
        self.anomaly_count = 0
        self._rng = anomaly_rng
        self._specs = {m.name: m for m in METRICS[device_type]}
        # Faults go on analogue values only: a spiking flag or a drifting counter is not a
        # sensor fault anyone would model.
        self._fault_metrics = tuple(m for m in METRICS[device_type] if m.kind == "gauge")
        self._faults: dict[str, ActiveFault] = {}

    def is_offline(self, now_ms: int) -> bool:
        return self.offline_until_ms is not None and now_ms < self.offline_until_ms

    @property
    def active_faults(self) -> tuple[AnomalyRecord, ...]:
        return tuple(f.record for f in self._faults.values())

    def next_payload(self, now_ms: int) -> TelemetryPayload | None:
        """Advance to `now_ms`; the reading to publish, or None while in a dropout."""
        metrics = self.machine.step(now_ms)  # the machine keeps running while the link is down
        if self.is_offline(now_ms):
            return None
        self.offline_until_ms = None
        if self.anomaly_probability > 0.0 and self._rng.random() < self.anomaly_probability:
            kind = self._rng.choice(_ALL_KINDS)
            self.inject(kind, now_ms)
            if kind == AnomalyKind.DROPOUT:
                return None
        if self._faults:
            self._apply_faults(metrics)
        payload: TelemetryPayload = {
            "ts": now_ms,
            "seq": self.seq,
            "type": self.device_type,
            "metrics": metrics,
        }
        self.seq += 1
        return payload

    def inject(
        self,
        kind: AnomalyKind | str,
        now_ms: int,
        *,
        metric: str | None = None,
        samples: int | None = None,
        duration_ms: int | None = None,
    ) -> AnomalyRecord:
        """Start a fault now; a metric fault takes effect from the next payload on."""
        kind = AnomalyKind(kind)
        if kind == AnomalyKind.DROPOUT:
            length = duration_ms if duration_ms is not None else self._rng.randint(*DROPOUT_MS)
            until = now_ms + length
            self.offline_until_ms = until
            record = AnomalyRecord(kind, self.device_id, None, now_ms, 0, until)
        else:
            assert kind in METRIC_KINDS
            if metric is None:
                spec = self._rng.choice(self._fault_metrics)
            elif metric in self._specs and self._specs[metric].kind == "gauge":
                spec = self._specs[metric]
            else:
                valid = ", ".join(m.name for m in self._fault_metrics)
                raise ValueError(f"no fault on {metric!r} of {self.device_type}; valid: {valid}")
            fault = start_metric_fault(
                kind, spec, device_id=self.device_id, now_ms=now_ms, rng=self._rng, samples=samples
            )
            self._faults[spec.name] = fault  # a new fault on a metric replaces the old one
            record = fault.record
        self.anomalies.append(record)
        self.anomaly_count += 1
        if self.on_anomaly is not None:
            self.on_anomaly(record)
        return record

    def _apply_faults(self, metrics: Metrics) -> None:
        for name, fault in list(self._faults.items()):
            metrics[name] = fault.apply(float(metrics[name]))
            if fault.remaining <= 0:
                del self._faults[name]
