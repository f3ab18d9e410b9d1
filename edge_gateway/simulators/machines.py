"""Physical models of the five device types. Pure: simulated time in, metric values out.

Each model keeps its true physical state (temperatures, pressures, job in progress) and advances
it by the time since its previous `step`, so the curves do not depend on the sample rate: every
lag is integrated exactly and the compressor's pressure sawtooth is solved segment by segment.
Sensor faults are not modelled here; `anomalies.py` applies them to the reported values.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from edge_gateway.simulators.catalog import (
    AIR_COMPRESSOR,
    CLEANROOM_ENV,
    CNC_SPINDLE,
    CONVEYOR,
    HYDRAULIC_PRESS,
    METRICS,
    MetricSpec,
)
from edge_gateway.simulators.physics import (
    DutyCycle,
    OrnsteinUhlenbeck,
    ambient_temp_c,
    clamp,
    lag,
    shift_utilisation,
)

Metrics = dict[str, float | bool]


def _finish(specs: tuple[MetricSpec, ...], raw: dict[str, float | bool]) -> Metrics:
    """Round to the sensor's resolution and keep within the documented normal range.

    The models are tuned to stay inside their ranges; the clamp only catches the far tails of
    the measurement noise so that "outside the normal range" always means an injected fault.
    """
    out: Metrics = {}
    for spec in specs:
        value = raw[spec.name]
        if spec.kind == "flag":
            out[spec.name] = bool(value)
            continue
        bounded = clamp(float(value), spec.low, spec.high)
        out[spec.name] = round(bounded) if spec.decimals == 0 else round(bounded, spec.decimals)
    return out


class Machine(ABC):
    """One physical machine; `step(now_ms)` advances it to `now_ms` and returns its readings."""

    device_type: ClassVar[str]

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._last_ms: int | None = None
        self._specs = METRICS[self.device_type]

    def step(self, now_ms: int) -> Metrics:
        # A clock that goes backwards (never in the runner) freezes the physics instead of
        # running it in reverse.
        dt_s = 0.0 if self._last_ms is None else max(0, now_ms - self._last_ms) / 1000.0
        first = self._last_ms is None
        self._last_ms = now_ms if self._last_ms is None else max(self._last_ms, now_ms)
        return _finish(self._specs, self._advance(now_ms, dt_s, first))

    @abstractmethod
    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]: ...

    def _noise(self, sigma: float) -> float:
        return self._rng.gauss(0.0, sigma)


class CncSpindle(Machine):
    """Machining centre: jobs made of operations (roughing, finishing) at different speed/load.

    Load and speed heat the spindle bearings (5 min lag) and, more slowly, the coolant;
    vibration rises with the square of speed, with load and with tool wear.
    """

    device_type = CNC_SPINDLE

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._duty = DutyCycle(rng, job_s=(12 * 60, 50 * 60), idle_s=(3 * 60, 15 * 60))
        self._job_speed = 0.0
        self._job_load = 0.0
        self._op_speed = 0.0
        self._op_load = 0.0
        self._op_until_ms = 0
        self._speed = 0.0
        self._spindle_temp = 0.0
        self._coolant_temp = 0.0
        self._tool_wear = rng.uniform(0.0, 60.0)
        self._tool_change_at = rng.uniform(80.0, 95.0)
        self._tool_life_s = rng.uniform(3.0, 6.0) * 3600.0  # cutting time at full load

    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]:
        rng = self._rng
        ambient = ambient_temp_c(now_ms)
        if first:
            self._spindle_temp = ambient + rng.uniform(0.0, 2.0)
            self._coolant_temp = ambient + rng.uniform(0.0, 1.0)
        if self._duty.update(now_ms):
            self._job_speed = rng.uniform(6_000.0, 16_000.0)
            self._job_load = rng.uniform(30.0, 65.0)
            self._op_until_ms = now_ms
        running = self._duty.running
        if running:
            if now_ms >= self._op_until_ms:
                self._op_speed = clamp(self._job_speed * rng.uniform(0.8, 1.15), 3_000.0, 18_000.0)
                self._op_load = clamp(self._job_load * rng.uniform(0.6, 1.25), 10.0, 85.0)
                self._op_until_ms = now_ms + round(rng.uniform(30.0, 240.0) * 1000)
            load = clamp(self._op_load + self._noise(2.5), 5.0, 95.0)
            self._speed = lag(self._speed, self._op_speed, dt_s, 1.5)
            self._tool_wear += 100.0 * (load / 100.0) * dt_s / self._tool_life_s
            if self._tool_wear >= self._tool_change_at:
                self._tool_wear = 0.0
                self._tool_change_at = rng.uniform(80.0, 95.0)
        else:
            load = abs(self._noise(0.3))
            self._speed = lag(self._speed, 0.0, dt_s, 1.5)
            if self._speed < 1.0:
                self._speed = 0.0
        speed_ratio = self._speed / 18_000.0
        self._spindle_temp = lag(
            self._spindle_temp, ambient + 0.30 * load + 18.0 * speed_ratio**1.5, dt_s, 300.0
        )
        self._coolant_temp = lag(self._coolant_temp, ambient + 0.5 + 0.07 * load, dt_s, 900.0)
        if self._speed > 0.0:
            vibration = (
                0.25
                + 1.5 * speed_ratio**2
                + 0.008 * load
                + 0.006 * self._tool_wear
                + abs(self._noise(0.12))
            )
        else:
            vibration = 0.04 + abs(self._noise(0.02))  # floor vibration from the hall
        return {
            "running": running,
            "spindle_speed_rpm": self._speed * (1.0 + self._noise(0.002)),
            "spindle_load_pct": load,
            "spindle_temp_c": self._spindle_temp + self._noise(0.1),
            "vibration_mm_s": vibration,
            "coolant_temp_c": self._coolant_temp + self._noise(0.05),
            "tool_wear_pct": self._tool_wear,
        }


class HydraulicPress(Machine):
    """Stamping press: each stroke is approach, pressing, dwell, decompression and return.

    The pump motor current follows ram pressure; the oil warms with the pressure it works at.
    """

    device_type = HYDRAULIC_PRESS

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._duty = DutyCycle(rng, job_s=(20 * 60, 90 * 60), idle_s=(3 * 60, 20 * 60))
        self._strokes_before_job = rng.randrange(100_000, 2_000_000)
        self._job_start_ms: int | None = None
        self._job_end_ms = 0
        self._cycle_s = rng.uniform(6.0, 14.0)
        self._peak_bar = 0.0
        self._oil_temp = 0.0

    def _job_strokes(self, until_ms: int) -> int:
        if self._job_start_ms is None:
            return 0
        elapsed_s = (min(until_ms, self._job_end_ms) - self._job_start_ms) / 1000.0
        return max(0, math.floor(elapsed_s / self._cycle_s))

    def _pressure(self, phase: float) -> float:
        peak = self._peak_bar
        if phase < 0.30:  # fast approach
            return 18.0 + 4.0 * phase / 0.30
        if phase < 0.55:  # pressing: force builds as the die closes
            return 22.0 + (peak - 22.0) * math.sin(0.5 * math.pi * (phase - 0.30) / 0.25)
        if phase < 0.65:  # dwell
            return peak
        if phase < 0.70:  # decompression
            return peak + (30.0 - peak) * (phase - 0.65) / 0.05
        return 30.0  # return stroke

    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]:
        rng = self._rng
        ambient = ambient_temp_c(now_ms)
        if first:
            self._oil_temp = ambient + rng.uniform(2.0, 5.0)
        if self._duty.update(now_ms):
            self._strokes_before_job += self._job_strokes(now_ms)
            self._job_start_ms = self._duty.started_ms
            self._job_end_ms = self._duty.until_ms or now_ms
            self._cycle_s = rng.uniform(6.0, 14.0)
            self._peak_bar = rng.uniform(120.0, 230.0)
        running = self._duty.running and self._job_start_ms is not None
        if running and self._job_start_ms is not None:
            elapsed_s = (now_ms - self._job_start_ms) / 1000.0
            pressure = self._pressure((elapsed_s / self._cycle_s) % 1.0) * (1.0 + self._noise(0.01))
            current = 10.0 + 0.2 * pressure + self._noise(0.5)
            oil_target = ambient + 10.0 + 0.11 * self._peak_bar
        else:
            pressure = 4.0 + self._noise(0.3)  # pump idling against the standby valve
            current = 7.5 + self._noise(0.2)
            oil_target = ambient + 10.0
        self._oil_temp = lag(self._oil_temp, oil_target, dt_s, 1500.0)
        return {
            "running": running,
            "ram_pressure_bar": pressure,
            "hydraulic_oil_temp_c": self._oil_temp + self._noise(0.1),
            "motor_current_a": current,
            "cycle_time_s": self._cycle_s + (self._noise(0.03) if running else 0.0),
            "stroke_count": self._strokes_before_job + self._job_strokes(now_ms),
        }


class Conveyor(Machine):
    """Belt conveyor: runs with the line, occasionally jams, which trips the drive for minutes.

    Current is magnetising current plus a speed term plus a term for the load on the belt; the
    winding temperature follows current squared (copper losses).
    """

    device_type = CONVEYOR
    MEAN_RUN_BETWEEN_JAMS_S = 3.0 * 3600.0

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._duty = DutyCycle(rng, job_s=(30 * 60, 240 * 60), idle_s=(5 * 60, 30 * 60))
        self._set_speed = 1.0
        self._density_per_m = 0.5
        self._speed = 0.0
        self._jammed_until_ms = 0
        self._motor_temp = 0.0

    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]:
        rng = self._rng
        ambient = ambient_temp_c(now_ms)
        if first:
            self._motor_temp = ambient
        if self._duty.update(now_ms):
            self._set_speed = rng.uniform(0.8, 1.6)
            self._density_per_m = rng.uniform(0.4, 0.75)
        jammed = now_ms < self._jammed_until_ms
        if (
            self._duty.running
            and not jammed
            and self._speed > 0.1
            and rng.random() < -math.expm1(-dt_s / self.MEAN_RUN_BETWEEN_JAMS_S)
        ):
            self._jammed_until_ms = now_ms + round(rng.uniform(60.0, 300.0) * 1000)
            jammed = True
        drive_on = self._duty.running and not jammed
        if jammed:
            self._speed = 0.0  # a jam stops the belt dead
        else:
            self._speed = lag(self._speed, self._set_speed if drive_on else 0.0, dt_s, 4.0)
            if self._speed < 0.01:
                self._speed = 0.0
        if drive_on:
            rate = self._density_per_m * self._speed * 60.0
            items = max(0.0, rng.gauss(rate, math.sqrt(rate))) if rate > 0.0 else 0.0
            current = 2.4 + 2.6 * self._speed + 0.045 * items + self._noise(0.12)
        else:
            items = 0.0
            current = 0.0
        self._motor_temp = lag(self._motor_temp, ambient + 0.3 * current**2, dt_s, 1200.0)
        return {
            "running": drive_on,
            "jammed": jammed,
            "belt_speed_m_s": self._speed,
            "motor_current_a": current,
            "motor_temp_c": self._motor_temp + self._noise(0.1),
            "items_per_min": items,
        }


CompressorState = Literal["off", "starting", "loaded", "unloaded"]


class AirCompressor(Machine):
    """Rotary screw compressor with load/unload control feeding the plant's air network.

    Pressure rises while loaded and falls while unloaded at rates set by capacity minus demand,
    so it saws between the load (6.5 bar) and unload (7.5 bar) set points. After running
    unloaded for the run-on time the motor stops; it restarts (star-delta) at the load point.
    Demand follows the shift, so nights and weekends show long unloaded and stopped periods.
    """

    device_type = AIR_COMPRESSOR
    LOAD_BAR = 6.5
    UNLOAD_BAR = 7.5
    CAPACITY_M3_MIN = 9.0
    BAR_PER_M3_MIN_S = 1.0 / 135.0  # receiver plus network volume
    RUN_ON_S = 90.0
    START_S = 6.0

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._state: CompressorState = "unloaded"
        self._pressure = rng.uniform(6.8, 7.3)
        self._unloaded_s = 0.0
        self._starting_s = 0.0
        self._demand = OrnsteinUhlenbeck(3.0, 3.0, 1.0 / 600.0, 0.035)
        self._oil_temp = 0.0
        self._dew_point = 3.0
        self._duty = 0.0

    def _integrate(self, dt_s: float, demand: float) -> float:
        """Advance the pressure state machine exactly over dt_s; returns seconds spent loaded."""
        k = self.BAR_PER_M3_MIN_S
        remaining = dt_s
        loaded_s = 0.0
        while remaining > 1e-9:
            if self._state == "loaded":
                rate = (self.CAPACITY_M3_MIN - demand) * k
                span = min(remaining, max(0.0, (self.UNLOAD_BAR - self._pressure) / rate))
                self._pressure += rate * span
                loaded_s += span
                remaining -= span
                if self._pressure >= self.UNLOAD_BAR - 1e-9:
                    self._state = "unloaded"
                    self._unloaded_s = 0.0
                continue
            fall = demand * k
            to_load = max(0.0, (self._pressure - self.LOAD_BAR) / fall)
            if self._state == "unloaded":
                span = min(remaining, to_load, self.RUN_ON_S - self._unloaded_s)
                self._unloaded_s += span
            elif self._state == "starting":
                span = min(remaining, self.START_S - self._starting_s)
                self._starting_s += span
            else:
                span = min(remaining, to_load)
            self._pressure -= fall * span
            remaining -= span
            if self._state == "starting" and self._starting_s >= self.START_S - 1e-9:
                self._state = "loaded"
            elif self._pressure <= self.LOAD_BAR + 1e-9:
                if self._state == "unloaded":
                    self._state = "loaded"
                elif self._state == "off":
                    self._state = "starting"
                    self._starting_s = 0.0
            elif self._state == "unloaded" and self._unloaded_s >= self.RUN_ON_S - 1e-9:
                self._state = "off"
        return loaded_s

    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]:
        ambient = ambient_temp_c(now_ms)
        if first:
            self._oil_temp = ambient + 30.0
        self._demand.mean = 0.5 + 6.5 * shift_utilisation(now_ms)
        demand = clamp(self._demand.step(self._rng, dt_s), 0.4, 8.0)
        loaded_share = self._integrate(dt_s, demand) / dt_s if dt_s > 0.0 else 0.0
        state = self._state
        running = state != "off"
        if state == "loaded":
            current = 88.0 + 9.0 * (self._pressure - self.LOAD_BAR) + self._noise(1.2)
        elif state == "starting":
            current = 60.0 + self._noise(3.0)  # star connection during star-delta start
        elif state == "unloaded":
            current = 36.0 + self._noise(1.0)
        else:
            current = 0.0
        loaded_target = 82.0 + 0.2 * (ambient - 20.0)  # thermostatic valve holds the oil
        idle_target = ambient + 38.0 if running else ambient
        oil_target = loaded_share * loaded_target + (1.0 - loaded_share) * idle_target
        self._oil_temp = lag(self._oil_temp, oil_target, dt_s, 420.0)
        self._duty = lag(self._duty, 100.0 * loaded_share, dt_s, 900.0)
        self._dew_point = lag(
            self._dew_point,
            2.5 + 0.15 * (ambient - 20.0) + 2.0 * self._duty / 100.0,
            dt_s,
            900.0,
        )
        return {
            "running": running,
            "loaded": state == "loaded",
            "discharge_pressure_bar": self._pressure + self._noise(0.01),
            "motor_current_a": current,
            "oil_temp_c": self._oil_temp + self._noise(0.1),
            "dew_point_c": self._dew_point + self._noise(0.15),
            "duty_cycle_pct": self._duty,
        }


class CleanroomEnv(Machine):
    """ISO 7 cleanroom: people are the main particle source; HVAC holds temperature, humidity
    and overpressure, and each door opening dents the overpressure for a moment."""

    device_type = CLEANROOM_ENV
    MAX_STAFF = 7

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._occupancy = 0
        self._particles = 0.0
        self._temp = 21.0
        self._humidity = OrnsteinUhlenbeck(44.0, 44.0, 1.0 / 1800.0, 0.05)

    def _advance(self, now_ms: int, dt_s: float, first: bool) -> dict[str, float | bool]:
        rng = self._rng
        ambient = ambient_temp_c(now_ms)
        target = round(self.MAX_STAFF * shift_utilisation(now_ms))
        if first:
            self._occupancy = target
            self._particles = 3_500.0 + 14_000.0 * target
        door = False
        if dt_s > 0.0:
            move = -math.expm1(-dt_s / 90.0)
            if self._occupancy != target and rng.random() < move:
                self._occupancy += 1 if self._occupancy < target else -1
                door = True
            # someone stepping out and back in
            elif rng.random() < -math.expm1(-dt_s * self._occupancy / 1200.0):
                door = True
        occ = self._occupancy
        # 30 air changes per hour clear particles with a time constant of about two minutes.
        self._particles = lag(self._particles, 3_500.0 + 14_000.0 * occ, dt_s, 150.0)
        particles = self._particles * math.exp(self._noise(0.12))
        coarse = particles * 0.008 * math.exp(self._noise(0.25))
        self._temp = lag(self._temp, 20.8 + 0.1 * occ + 0.05 * (ambient - 21.0), dt_s, 600.0)
        humidity = self._humidity.step(rng, dt_s) + 0.6 * occ
        pressure = rng.uniform(7.5, 9.5) if door else 12.5 + self._noise(0.3)
        return {
            "particles_0_5um_per_m3": particles,
            "particles_5um_per_m3": coarse,
            "temp_c": self._temp + self._noise(0.03),
            "humidity_pct": humidity,
            "differential_pressure_pa": pressure,
            "occupancy_persons": occ,
        }


MACHINES: dict[str, type[Machine]] = {
    cls.device_type: cls
    for cls in (CncSpindle, HydraulicPress, Conveyor, AirCompressor, CleanroomEnv)
}


def make_machine(device_type: str, rng: random.Random) -> Machine:
    try:
        cls = MACHINES[device_type]
    except KeyError:
        raise ValueError(
            f"unknown device type {device_type!r}; valid: {', '.join(MACHINES)}"
        ) from None
    return cls(rng)
