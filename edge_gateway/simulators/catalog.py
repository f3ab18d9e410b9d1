"""What each simulated device type reports: metric names, units and normal operating ranges.

Pure data with no imports beyond the standard library. The hub keeps its own metadata of these
types (hub/metadata/device_types.yaml; tests/unit/test_metadata.py checks that the two agree).

A *normal range* bounds every value a healthy device produces in any operating state (idle,
warming up, running flat out, night shift, weekend). The simulator never leaves it unless an
anomaly is injected, so a reading outside it is always worth an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MetricKind = Literal["gauge", "counter", "flag"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: MetricKind
    unit: str
    low: float = 0.0
    high: float = 1.0
    decimals: int = 2
    description: str = ""


def _gauge(name: str, unit: str, low: float, high: float, decimals: int, text: str) -> MetricSpec:
    return MetricSpec(name, "gauge", unit, low, high, decimals, text)


def _counter(name: str, unit: str, high: float, text: str) -> MetricSpec:
    return MetricSpec(name, "counter", unit, 0.0, high, 0, text)


def _flag(name: str, text: str) -> MetricSpec:
    return MetricSpec(name, "flag", "bool", 0.0, 1.0, 0, text)


CNC_SPINDLE: Final = "cnc_spindle"
HYDRAULIC_PRESS: Final = "hydraulic_press"
CONVEYOR: Final = "conveyor"
AIR_COMPRESSOR: Final = "air_compressor"
CLEANROOM_ENV: Final = "cleanroom_env"

ALL_TYPES: Final[tuple[str, ...]] = (
    CNC_SPINDLE,
    HYDRAULIC_PRESS,
    CONVEYOR,
    AIR_COMPRESSOR,
    CLEANROOM_ENV,
)

# Device ids are f"{prefix}-{n:02d}", e.g. cnc-01, press-01.
DEVICE_ID_PREFIX: Final[dict[str, str]] = {
    CNC_SPINDLE: "cnc",
    HYDRAULIC_PRESS: "press",
    CONVEYOR: "conveyor",
    AIR_COMPRESSOR: "compressor",
    CLEANROOM_ENV: "cleanroom",
}

METRICS: Final[dict[str, tuple[MetricSpec, ...]]] = {
    CNC_SPINDLE: (
        _flag("running", "a machining job is in progress"),
        _gauge("spindle_speed_rpm", "rpm", 0, 24_000, 0, "spindle speed"),
        _gauge("spindle_load_pct", "%", 0, 100, 1, "spindle motor load"),
        _gauge("spindle_temp_c", "°C", 10, 80, 1, "spindle bearing temperature"),
        _gauge("vibration_mm_s", "mm/s", 0, 4.5, 2, "RMS vibration velocity (ISO 10816 zone B)"),
        _gauge("coolant_temp_c", "°C", 10, 35, 1, "coolant temperature"),
        _gauge("tool_wear_pct", "%", 0, 100, 1, "estimated wear of the current tool"),
    ),
    HYDRAULIC_PRESS: (
        _flag("running", "the press is cycling"),
        _gauge("ram_pressure_bar", "bar", 0, 250, 1, "main cylinder pressure"),
        _gauge("hydraulic_oil_temp_c", "°C", 10, 65, 1, "oil temperature in the tank"),
        _gauge("motor_current_a", "A", 0, 75, 1, "pump motor current"),
        _gauge("cycle_time_s", "s", 4, 20, 2, "duration of the last stroke cycle"),
        _counter("stroke_count", "strokes", 1e9, "strokes since commissioning"),
    ),
    CONVEYOR: (
        _flag("running", "the drive is on"),
        _flag("jammed", "a jam tripped the drive"),
        _gauge("belt_speed_m_s", "m/s", 0, 2.0, 2, "belt speed"),
        _gauge("motor_current_a", "A", 0, 15, 2, "drive motor current"),
        _gauge("motor_temp_c", "°C", 10, 80, 1, "drive motor winding temperature"),
        _gauge("items_per_min", "1/min", 0, 150, 0, "items passing the exit sensor"),
    ),
    AIR_COMPRESSOR: (
        _flag("running", "the motor is on"),
        _flag("loaded", "the inlet valve is open and the compressor delivers air"),
        _gauge("discharge_pressure_bar", "bar", 6.0, 8.0, 2, "network pressure at the discharge"),
        _gauge("motor_current_a", "A", 0, 120, 1, "motor current"),
        _gauge("oil_temp_c", "°C", 10, 100, 1, "screw element oil temperature"),
        _gauge("dew_point_c", "°C", -5, 10, 1, "pressure dew point after the dryer"),
        _gauge("duty_cycle_pct", "%", 0, 100, 1, "loaded share of the last 15 minutes"),
    ),
    CLEANROOM_ENV: (
        _gauge("particles_0_5um_per_m3", "1/m³", 0, 352_000, 0, "≥0.5 µm particles (ISO 7)"),
        _gauge("particles_5um_per_m3", "1/m³", 0, 2_930, 0, "≥5 µm particles (ISO 7)"),
        _gauge("temp_c", "°C", 19, 23, 2, "room temperature"),
        _gauge("humidity_pct", "%RH", 35, 55, 1, "relative humidity"),
        _gauge("differential_pressure_pa", "Pa", 5, 25, 1, "overpressure to the corridor"),
        _gauge("occupancy_persons", "persons", 0, 8, 0, "people gowned in the room"),
    ),
}

# type -> metric -> (low, high), numeric metrics only (gauges and counters, not flags).
NORMAL_RANGES: Final[dict[str, dict[str, tuple[float, float]]]] = {
    device_type: {m.name: (m.low, m.high) for m in specs if m.kind != "flag"}
    for device_type, specs in METRICS.items()
}


def metric_specs(device_type: str) -> dict[str, MetricSpec]:
    return {m.name: m for m in METRICS[device_type]}
