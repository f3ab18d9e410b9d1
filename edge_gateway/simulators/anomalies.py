"""Sensor and connectivity faults laid over a machine's true readings. Pure: no I/O, no clock.

A fault changes what the device *reports*, never the machine's physical state, so a faulty run
and a clean run with the same seed show the same underlying process and differ only by the
fault. Kinds:

* ``spike``: one sample far above the normal range (electrical interference).
* ``drift``: an offset that grows linearly over many samples, then vanishes (recalibration).
* ``stuck``: the value freezes for many samples (a flatline: a hung transmitter).
* ``out_of_range``: a physically implausible but finite value for a few samples
  (a broken wire read as full scale, a negative absolute quantity).
* ``dropout``: the device goes silent; the runner drops its MQTT connection without a
  DISCONNECT so the broker publishes its last will, and reconnects when the dropout ends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from edge_gateway.simulators.catalog import MetricSpec


class AnomalyKind(StrEnum):
    SPIKE = "spike"
    DRIFT = "drift"
    STUCK = "stuck"
    OUT_OF_RANGE = "out_of_range"
    DROPOUT = "dropout"


METRIC_KINDS = (AnomalyKind.SPIKE, AnomalyKind.DRIFT, AnomalyKind.STUCK, AnomalyKind.OUT_OF_RANGE)

# Sample counts (metric faults) and milliseconds (dropout) drawn when a fault starts.
DRIFT_SAMPLES = (120, 900)
STUCK_SAMPLES = (30, 600)
OUT_OF_RANGE_SAMPLES = (5, 60)
DROPOUT_MS = (20_000, 120_000)


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    """One injected fault, as logged and kept for tests and demos."""

    kind: AnomalyKind
    device_id: str
    metric: str | None  # None for a dropout
    start_ts: int
    samples: int  # samples affected; 0 for a dropout
    offline_until_ts: int | None = None  # dropout only


@dataclass(slots=True)
class ActiveFault:
    record: AnomalyRecord
    spec: MetricSpec
    remaining: int
    # spike/out_of_range: the value to report; drift: total offset reached at the end;
    # stuck: None until the first affected sample fixes the frozen value.
    value: float | None
    done: int = 0

    def apply(self, true_value: float) -> float:
        kind = self.record.kind
        self.done += 1
        self.remaining -= 1
        if kind == AnomalyKind.DRIFT:
            assert self.value is not None
            offset = self.value * self.done / self.record.samples
            return _round(self.spec, true_value + offset)
        if self.value is None:  # stuck: freeze on the first value it sees
            self.value = true_value
        return self.value


def _round(spec: MetricSpec, value: float) -> float:
    return float(round(value)) if spec.decimals == 0 else round(value, spec.decimals)


def start_metric_fault(
    kind: AnomalyKind,
    spec: MetricSpec,
    *,
    device_id: str,
    now_ms: int,
    rng: random.Random,
    samples: int | None = None,
) -> ActiveFault:
    span = spec.high - spec.low
    value: float | None
    if kind == AnomalyKind.SPIKE:
        n = 1
        value = _round(spec, spec.high + span * rng.uniform(0.5, 1.5))
    elif kind == AnomalyKind.DRIFT:
        n = samples or rng.randint(*DRIFT_SAMPLES)
        value = span * rng.uniform(0.4, 0.8) * rng.choice((-1.0, 1.0))
    elif kind == AnomalyKind.STUCK:
        n = samples or rng.randint(*STUCK_SAMPLES)
        value = None
    elif kind == AnomalyKind.OUT_OF_RANGE:
        n = samples or rng.randint(*OUT_OF_RANGE_SAMPLES)
        if rng.random() < 0.5:
            value = _round(spec, spec.low - span * rng.uniform(1.0, 3.0))
        else:
            value = _round(spec, spec.high + span * rng.uniform(2.0, 10.0))
    else:
        raise ValueError(f"{kind} is not a metric fault")
    record = AnomalyRecord(kind, device_id, spec.name, now_ms, n)
    return ActiveFault(record, spec, n, value)
