"""Building blocks shared by the machine models: plant clock, shifts, lags, duty cycles.

Everything here is a pure function of the simulated time (epoch milliseconds, UTC) and of a
`random.Random` handed in by the caller; nothing reads a clock or does I/O.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000


def hour_of_day(now_ms: int) -> float:
    return (now_ms % MS_PER_DAY) / MS_PER_HOUR


def weekday(now_ms: int) -> int:
    """Monday is 0. 1970-01-01 was a Thursday."""
    return (now_ms // MS_PER_DAY + 3) % 7


def shift_utilisation(now_ms: int) -> float:
    """Share of time a machine is busy: three shifts on weekdays, maintenance only at weekends."""
    if weekday(now_ms) >= 5:
        return 0.05
    hour = hour_of_day(now_ms)
    if 6.0 <= hour < 14.0:
        return 0.9  # early shift
    if 14.0 <= hour < 22.0:
        return 0.75  # late shift
    return 0.3  # night shift runs a skeleton crew


def ambient_temp_c(now_ms: int) -> float:
    """Hall temperature: 21 °C on average, warmest mid-afternoon."""
    return 21.0 + 2.5 * math.sin(2.0 * math.pi * (hour_of_day(now_ms) - 9.0) / 24.0)


def lag(current: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order lag: exact for a constant target, so any sample interval gives the same curve."""
    if dt_s <= 0.0:
        return current
    return target + (current - target) * math.exp(-dt_s / tau_s)


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


@dataclass(slots=True)
class OrnsteinUhlenbeck:
    """Mean-reverting random walk for slowly wandering quantities (air demand, humidity)."""

    value: float
    mean: float
    reversion_per_s: float
    sigma: float

    def step(self, rng: random.Random, dt_s: float) -> float:
        if dt_s > 0.0:
            decay = math.exp(-self.reversion_per_s * dt_s)
            spread = self.sigma * math.sqrt((1.0 - decay * decay) / (2.0 * self.reversion_per_s))
            self.value = self.mean + (self.value - self.mean) * decay + rng.gauss(0.0, spread)
        return self.value


class DutyCycle:
    """Alternating jobs and idle gaps. When a gap ends a job starts with a probability chosen so
    that the busy share of time tracks the shift's utilisation (capped by the gaps a machine
    needs between jobs: set-up, loading, inspection).

    `update(now_ms)` catches up over any interval, so it is exact for any sample rate.
    """

    def __init__(
        self,
        rng: random.Random,
        job_s: tuple[float, float],
        idle_s: tuple[float, float],
    ) -> None:
        self._rng = rng
        self._job_s = job_s
        self._idle_s = idle_s
        self._mean_job_s = sum(job_s) / 2.0
        self._mean_idle_s = sum(idle_s) / 2.0
        self.running = False
        self.started_ms = 0
        self.until_ms: int | None = None
        self.jobs_started = 0

    def update(self, now_ms: int) -> bool:
        """Advance to `now_ms`; True when a new job started since the last call."""
        started = False
        if self.until_ms is None:
            self.running = self._rng.random() < shift_utilisation(now_ms)
            self._begin(now_ms, self._job_s if self.running else self._idle_s)
            started = self.running
        while self.until_ms is not None and now_ms >= self.until_ms:
            at = self.until_ms
            if self.running:
                self.running = False
                self._begin(at, self._idle_s)
            elif self._rng.random() < self.start_probability(shift_utilisation(at)):
                self.running = True
                self._begin(at, self._job_s)
                started = True
            else:
                self._begin(at, self._idle_s)
        return started

    def start_probability(self, utilisation: float) -> float:
        # Busy share = job / (job + idle / p)  =>  p = u * idle / (job * (1 - u)).
        if utilisation >= 1.0:
            return 1.0
        return min(1.0, utilisation * self._mean_idle_s / (self._mean_job_s * (1.0 - utilisation)))

    def _begin(self, at_ms: int, span_s: tuple[float, float]) -> None:
        self.started_ms = at_ms
        self.until_ms = at_ms + round(self._rng.uniform(*span_s) * 1000)
        if self.running:
            self.jobs_started += 1
