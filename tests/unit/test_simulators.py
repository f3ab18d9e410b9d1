"""The pure simulator core: machine physics, faults, fleet layout and determinism. No services."""

from __future__ import annotations

import json
import math
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from itertools import pairwise

import pytest

from edge_gateway.simulators import (
    ALL_TYPES,
    METRICS,
    NORMAL_RANGES,
    AnomalyKind,
    AnomalyRecord,
    FleetSpec,
    SimulatedDevice,
    TelemetryPayload,
    build_fleet,
    parse_types,
)
from edge_gateway.simulators.fleet import device_id
from edge_gateway.simulators.physics import (
    DutyCycle,
    OrnsteinUhlenbeck,
    hour_of_day,
    lag,
    shift_utilisation,
    weekday,
)
from protocol.models import DevicePayload
from protocol.topics import is_identifier, telemetry_topic

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FRIDAY_MS = 1_764_288_000_000  # 2025-11-28 00:00 UTC, a Friday
MONDAY_MS = FRIDAY_MS + 3 * 86_400_000
HOUR_MS = 3_600_000


def one_device(
    device_type: str, *, seed: int = 42, anomaly_probability: float = 0.0
) -> SimulatedDevice:
    spec = FleetSpec(types=(device_type,), seed=seed, anomaly_probability=anomaly_probability)
    (device,) = build_fleet(spec)
    return device


def run(device: SimulatedDevice, start_ms: int, step_ms: int, n: int) -> list[TelemetryPayload]:
    out = []
    for i in range(n):
        payload = device.next_payload(start_ms + i * step_ms)
        assert payload is not None
        out.append(payload)
    return out


@cache
def three_days(device_type: str) -> tuple[TelemetryPayload, ...]:
    """Friday 00:00 to Monday 00:00 UTC every 20 s: weekday shifts, a night and a weekend."""
    return tuple(run(one_device(device_type), FRIDAY_MS, 20_000, 3 * 4_320))


@cache
def day_shift_1hz(device_type: str) -> tuple[TelemetryPayload, ...]:
    """Monday 04:00 to 12:00 at 1 Hz: end of the night shift and most of the early shift."""
    return tuple(run(one_device(device_type), MONDAY_MS + 4 * HOUR_MS, 1_000, 8 * 3_600))


def series(payloads: Sequence[TelemetryPayload], metric: str) -> list[float]:
    return [float(p["metrics"][metric]) for p in payloads]


def within(
    payloads: Sequence[TelemetryPayload], start_h: float, end_h: float, day: int
) -> list[TelemetryPayload]:
    return [
        p for p in payloads if weekday(p["ts"]) == day and start_h <= hour_of_day(p["ts"]) < end_h
    ]


# catalogue


def test_catalogue_covers_every_type_with_four_to_eight_metrics() -> None:
    assert ALL_TYPES == (
        "cnc_spindle",
        "hydraulic_press",
        "conveyor",
        "air_compressor",
        "cleanroom_env",
    )
    for device_type in ALL_TYPES:
        specs = METRICS[device_type]
        assert 4 <= len(specs) <= 8, device_type
        numeric = {m.name for m in specs if m.kind != "flag"}
        assert set(NORMAL_RANGES[device_type]) == numeric
        for spec in specs:
            assert METRIC_NAME.match(spec.name), spec.name
            assert spec.low < spec.high, spec.name


# physics and realism


@pytest.mark.parametrize("device_type", ALL_TYPES)
def test_payloads_are_valid_and_stay_within_normal_ranges(device_type: str) -> None:
    payloads = three_days(device_type)
    names = [m.name for m in METRICS[device_type]]
    ranges = NORMAL_RANGES[device_type]
    for seq, payload in enumerate(payloads):
        assert payload["seq"] == seq
        assert payload["type"] == device_type
        assert list(payload["metrics"]) == names
        body = DevicePayload.model_validate_json(json.dumps(payload))
        assert body.metrics == payload["metrics"]
        for name, value in payload["metrics"].items():
            if name in ranges:
                low, high = ranges[name]
                assert not isinstance(value, bool)
                assert low <= value <= high, (name, value, payload["ts"])
            else:
                assert isinstance(value, bool), name
    # The output clamp is a safety net for noise tails, not what shapes the data: a value pinned
    # to a bound that is not a natural floor (0 rpm, 0 A) must be rare.
    for name, (low, high) in ranges.items():
        values = series(payloads, name)
        pinned = sum(1 for v in values if (v == low and low != 0.0) or v == high)
        assert pinned <= len(values) // 1000, (name, pinned)


def test_spindle_load_heats_the_spindle_and_speed_drives_vibration() -> None:
    payloads = day_shift_1hz("cnc_spindle")
    load = series(payloads, "spindle_load_pct")
    assert statistics.correlation(load, series(payloads, "spindle_temp_c")) > 0.5
    speed = series(payloads, "spindle_speed_rpm")
    assert statistics.correlation(speed, series(payloads, "vibration_mm_s")) > 0.8


def test_spindle_warms_up_with_a_lag_after_a_job_starts() -> None:
    payloads = day_shift_1hz("cnc_spindle")
    starts = [
        i
        for i, (a, b) in enumerate(pairwise(payloads), start=1)
        if not a["metrics"]["running"] and b["metrics"]["running"]
    ]
    warmed = 0
    for i in starts:
        window = payloads[i : i + 600]
        if len(window) < 600 or not all(p["metrics"]["running"] for p in window):
            continue
        temps = series(window, "spindle_temp_c")
        # first-order lag: a clear rise that is still far from done after one minute
        assert temps[-1] - temps[0] > 3.0
        assert temps[60] - temps[0] < 0.5 * (temps[-1] - temps[0])
        warmed += 1
    assert warmed >= 1


def test_conveyor_current_follows_speed_and_jams_stop_the_belt() -> None:
    payloads = day_shift_1hz("conveyor")
    speed = series(payloads, "belt_speed_m_s")
    assert statistics.correlation(speed, series(payloads, "motor_current_a")) > 0.8
    assert statistics.correlation(speed, series(payloads, "items_per_min")) > 0.4
    for p in three_days("conveyor"):
        if p["metrics"]["jammed"]:
            assert p["metrics"]["belt_speed_m_s"] == 0
            assert p["metrics"]["running"] is False
    assert any(p["metrics"]["jammed"] for p in three_days("conveyor"))


def test_compressor_current_follows_its_state_and_pressure_saws() -> None:
    payloads = three_days("air_compressor")
    for p in payloads:
        m = p["metrics"]
        if not m["running"]:
            assert m["motor_current_a"] == 0
            assert m["loaded"] is False
        elif m["loaded"]:
            assert float(m["motor_current_a"]) > 80
        else:
            assert 20 < float(m["motor_current_a"]) < 80
    running = series(payloads, "running")
    assert statistics.correlation(running, series(payloads, "motor_current_a")) > 0.5
    # at 1 Hz the pressure rises while loaded and falls while unloaded
    fast = day_shift_1hz("air_compressor")
    rising = [
        b["metrics"]["discharge_pressure_bar"] - a["metrics"]["discharge_pressure_bar"]
        for a, b in pairwise(fast)
        if a["metrics"]["loaded"] and b["metrics"]["loaded"]
    ]
    falling = [
        b["metrics"]["discharge_pressure_bar"] - a["metrics"]["discharge_pressure_bar"]
        for a, b in pairwise(fast)
        if not a["metrics"]["loaded"] and not b["metrics"]["loaded"]
    ]
    assert statistics.mean(rising) > 0.005
    assert statistics.mean(falling) < -0.005
    pressure = series(fast, "discharge_pressure_bar")
    assert min(pressure) < 6.6
    assert max(pressure) > 7.4


def test_press_current_follows_ram_pressure() -> None:
    payloads = day_shift_1hz("hydraulic_press")
    pressure = series(payloads, "ram_pressure_bar")
    assert statistics.correlation(pressure, series(payloads, "motor_current_a")) > 0.9
    strokes = series(payloads, "stroke_count")
    assert all(b >= a for a, b in pairwise(strokes))
    assert strokes[-1] > strokes[0]


def test_cleanroom_particles_follow_occupancy() -> None:
    payloads = three_days("cleanroom_env")
    occupancy = series(payloads, "occupancy_persons")
    assert statistics.correlation(occupancy, series(payloads, "particles_0_5um_per_m3")) > 0.7


def test_shifts_and_weekends_change_utilisation() -> None:
    def share(payloads: Sequence[TelemetryPayload], flag: str) -> float:
        return sum(1 for p in payloads if p["metrics"][flag]) / len(payloads)

    friday, saturday, sunday = 4, 5, 6
    for device_type in ("cnc_spindle", "hydraulic_press", "conveyor"):
        payloads = three_days(device_type)
        day_shift = share(within(payloads, 6, 14, friday), "running")
        weekend = share(
            within(payloads, 0, 24, saturday) + within(payloads, 0, 24, sunday), "running"
        )
        assert day_shift > 0.5, device_type
        assert weekend < 0.25, device_type
        assert day_shift > weekend + 0.4, device_type
    compressor = three_days("air_compressor")
    assert share(within(compressor, 6, 14, friday), "loaded") > share(
        within(compressor, 0, 24, sunday), "loaded"
    )
    assert share(within(compressor, 0, 24, sunday), "running") < 0.9  # stops when demand is low
    cleanroom = three_days("cleanroom_env")
    assert max(series(within(cleanroom, 12, 24, sunday), "occupancy_persons")) == 0
    assert statistics.mean(series(within(cleanroom, 8, 12, friday), "occupancy_persons")) >= 4


def test_shift_calendar() -> None:
    assert weekday(FRIDAY_MS) == 4
    assert shift_utilisation(FRIDAY_MS + 8 * HOUR_MS) > shift_utilisation(FRIDAY_MS + 16 * HOUR_MS)
    assert shift_utilisation(FRIDAY_MS + 16 * HOUR_MS) > shift_utilisation(FRIDAY_MS + 2 * HOUR_MS)
    assert shift_utilisation(FRIDAY_MS + 2 * HOUR_MS) > shift_utilisation(FRIDAY_MS + 32 * HOUR_MS)


def test_lag_is_exact_for_any_step() -> None:
    one_step = lag(20.0, 60.0, 10.0, 30.0)
    current = 20.0
    for _ in range(10):
        current = lag(current, 60.0, 1.0, 30.0)
    assert math.isclose(one_step, current, rel_tol=1e-12)
    assert lag(20.0, 60.0, 0.0, 30.0) == 20.0


def test_duty_cycle_catches_up_over_long_gaps() -> None:
    import random

    duty = DutyCycle(random.Random(1), job_s=(600, 1200), idle_s=(60, 300))
    duty.update(MONDAY_MS)
    duty.update(MONDAY_MS + 24 * HOUR_MS)
    assert duty.until_ms is not None
    assert duty.until_ms > MONDAY_MS + 24 * HOUR_MS
    assert duty.jobs_started > 10


def test_ornstein_uhlenbeck_reverts_to_its_mean() -> None:
    import random

    walk = OrnsteinUhlenbeck(10.0, 0.0, 1.0 / 60.0, 0.01)
    rng = random.Random(3)
    for _ in range(3600):
        walk.step(rng, 1.0)
    assert abs(walk.value) < 1.0


# faults


def twins(device_type: str) -> tuple[SimulatedDevice, SimulatedDevice]:
    """Two identical devices: one gets a fault injected, the other shows the true values."""
    return one_device(device_type), one_device(device_type)


def paired(
    faulty: SimulatedDevice, clean: SimulatedDevice, start_ms: int, n: int
) -> list[tuple[TelemetryPayload | None, TelemetryPayload]]:
    out = []
    for i in range(n):
        ts = start_ms + i * 1000
        reference = clean.next_payload(ts)
        assert reference is not None
        out.append((faulty.next_payload(ts), reference))
    return out


def test_spike_is_one_sample_above_the_normal_range() -> None:
    faulty, clean = twins("cnc_spindle")
    start = MONDAY_MS + 9 * HOUR_MS
    paired(faulty, clean, start - 10_000, 10)
    record = faulty.inject("spike", start, metric="spindle_temp_c")
    assert (record.kind, record.device_id, record.metric, record.start_ts, record.samples) == (
        AnomalyKind.SPIKE,
        "cnc-01",
        "spindle_temp_c",
        start,
        1,
    )
    pairs = paired(faulty, clean, start, 5)
    high = NORMAL_RANGES["cnc_spindle"]["spindle_temp_c"][1]
    first, _ = pairs[0]
    assert first is not None
    assert float(first["metrics"]["spindle_temp_c"]) > high
    assert all(f == c for f, c in pairs[1:])
    DevicePayload.model_validate(first)


def test_stuck_sensor_flatlines_for_n_samples() -> None:
    faulty, clean = twins("cleanroom_env")
    start = MONDAY_MS + 9 * HOUR_MS
    faulty.inject("stuck", start, metric="particles_0_5um_per_m3", samples=50)
    pairs = paired(faulty, clean, start, 60)
    stuck = [f["metrics"]["particles_0_5um_per_m3"] for f, _ in pairs if f is not None]
    true = [c["metrics"]["particles_0_5um_per_m3"] for _, c in pairs]
    assert len(set(stuck[:50])) == 1
    assert stuck[0] == true[0]
    assert len(set(true[:50])) > 10
    assert stuck[50:] == true[50:]


def test_drift_is_a_monotonic_ramp_then_recovers() -> None:
    faulty, clean = twins("hydraulic_press")
    start = MONDAY_MS + 9 * HOUR_MS
    faulty.inject("drift", start, metric="hydraulic_oil_temp_c", samples=300)
    pairs = paired(faulty, clean, start, 320)
    offsets = [
        float(f["metrics"]["hydraulic_oil_temp_c"]) - float(c["metrics"]["hydraulic_oil_temp_c"])
        for f, c in pairs
        if f is not None
    ]
    ramp = offsets[:300]
    sign = 1.0 if ramp[-1] > 0 else -1.0
    assert all(sign * (b - a) >= -1e-9 for a, b in pairwise(ramp))
    low, high = NORMAL_RANGES["hydraulic_press"]["hydraulic_oil_temp_c"]
    assert abs(ramp[-1]) >= 0.39 * (high - low)
    assert abs(ramp[0]) < 0.01 * (high - low)
    assert offsets[300:] == [0.0] * 20


def test_out_of_range_values_are_implausible_but_finite() -> None:
    faulty, clean = twins("air_compressor")
    start = MONDAY_MS + 9 * HOUR_MS
    faulty.inject("out_of_range", start, metric="discharge_pressure_bar", samples=10)
    pairs = paired(faulty, clean, start, 12)
    low, high = NORMAL_RANGES["air_compressor"]["discharge_pressure_bar"]
    values = [float(f["metrics"]["discharge_pressure_bar"]) for f, _ in pairs if f is not None]
    assert all(math.isfinite(v) and not low <= v <= high for v in values[:10])
    assert all(low <= v <= high for v in values[10:])
    for faulty_payload, _ in pairs:
        DevicePayload.model_validate_json(json.dumps(faulty_payload))


def test_dropout_silences_the_device_and_keeps_the_machine_running() -> None:
    faulty, clean = twins("conveyor")
    start = MONDAY_MS + 9 * HOUR_MS
    paired(faulty, clean, start - 5_000, 5)
    record = faulty.inject("dropout", start, duration_ms=30_000)
    assert record.metric is None
    assert record.offline_until_ts == start + 30_000
    assert faulty.is_offline(start + 29_999)
    assert not faulty.is_offline(start + 30_000)
    pairs = paired(faulty, clean, start, 40)
    assert all(f is None for f, _ in pairs[:30])
    resumed = [f for f, _ in pairs[30:]]
    assert [p["seq"] for p in resumed if p is not None] == list(range(5, 15))
    # the physics went on while the device was silent
    assert all(f is not None and f["metrics"] == c["metrics"] for f, c in pairs[30:])


def test_a_fault_on_an_unknown_metric_is_refused() -> None:
    device = one_device("cnc_spindle")
    with pytest.raises(ValueError, match="valid: spindle_speed_rpm"):
        device.inject("stuck", MONDAY_MS, metric="running")
    with pytest.raises(ValueError, match="melted"):
        device.inject("melted", MONDAY_MS)


def test_random_faults_start_at_the_configured_rate() -> None:
    probability = 0.01
    eligible = 0
    seen: dict[AnomalyKind, int] = {}
    recorded: list[AnomalyRecord] = []
    for device_type in ALL_TYPES:
        spec = FleetSpec(types=(device_type,), anomaly_probability=probability, seed=7)
        (device,) = build_fleet(spec, on_anomaly=recorded.append)
        for i in range(3 * 3600):
            ts = MONDAY_MS + 8 * HOUR_MS + i * 1000
            eligible += not device.is_offline(ts)
            payload = device.next_payload(ts)
            if payload is not None:
                DevicePayload.model_validate(payload)
                for value in payload["metrics"].values():
                    assert isinstance(value, bool) or math.isfinite(value)
        assert device.anomaly_count == len(device.anomalies)
    expected = probability * eligible
    assert abs(len(recorded) - expected) <= 4 * math.sqrt(expected * (1 - probability))
    for record in recorded:
        seen[record.kind] = seen.get(record.kind, 0) + 1
        assert (record.metric is None) == (record.kind == AnomalyKind.DROPOUT)
        if record.metric is not None:
            assert record.metric in NORMAL_RANGES[TYPE_OF[record.device_id.split("-")[0]]]
    assert set(seen) == set(AnomalyKind)


TYPE_OF = {
    "cnc": "cnc_spindle",
    "press": "hydraulic_press",
    "conveyor": "conveyor",
    "compressor": "air_compressor",
    "cleanroom": "cleanroom_env",
}


def test_no_faults_when_the_probability_is_zero() -> None:
    for device_type in ALL_TYPES:
        device = one_device(device_type, anomaly_probability=0.0)
        run(device, MONDAY_MS, 1000, 2000)
        assert device.anomaly_count == 0


# fleet layout and determinism


def fleet_series(spec: FleetSpec, n: int = 600) -> dict[str, list[TelemetryPayload | None]]:
    devices = build_fleet(spec)
    return {
        d.device_id: [d.next_payload(MONDAY_MS + 9 * HOUR_MS + i * 1000) for i in range(n)]
        for d in devices
    }


def test_same_seed_same_data_different_seed_different_data() -> None:
    spec = FleetSpec(anomaly_probability=0.01)
    first, again = fleet_series(spec), fleet_series(spec)
    assert first == again
    other = fleet_series(FleetSpec(anomaly_probability=0.01, seed=43))
    for did in first:
        assert first[did] != other[did], did


def test_a_device_data_does_not_depend_on_fleet_size_or_order() -> None:
    small = fleet_series(FleetSpec(anomaly_probability=0.01))
    large = fleet_series(
        FleetSpec(types=tuple(reversed(ALL_TYPES)), count_per_type=3, anomaly_probability=0.01)
    )
    for did, payloads in small.items():
        assert large[did] == payloads, did
    assert large["cnc-02"] != large["cnc-01"]


def test_device_ids_are_unique_valid_and_stable() -> None:
    spec = FleetSpec(count_per_type=120)
    ids = [did for did, _ in spec.device_ids()]
    assert len(ids) == len(set(ids)) == 600
    assert all(is_identifier(did) for did in ids)
    for did in ids:
        telemetry_topic(spec.site, did)
    assert [device_id(t, 1) for t in ALL_TYPES] == [
        "cnc-01",
        "press-01",
        "conveyor-01",
        "compressor-01",
        "cleanroom-01",
    ]
    assert "cnc-100" in ids
    devices = build_fleet(FleetSpec(types=("conveyor", "cnc_spindle"), count_per_type=2))
    assert [(d.device_id, d.device_type) for d in devices] == [
        ("conveyor-01", "conveyor"),
        ("conveyor-02", "conveyor"),
        ("cnc-01", "cnc_spindle"),
        ("cnc-02", "cnc_spindle"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"types": ("lathe",)}, "unknown device type"),
        ({"types": ("conveyor", "conveyor")}, "repeat"),
        ({"count_per_type": -1}, "count_per_type"),
        ({"site": "site 1"}, "site"),
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"rate_hz": math.inf}, "rate_hz"),
        ({"anomaly_probability": 1.5}, "anomaly_probability"),
    ],
)
def test_fleet_spec_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FleetSpec(**kwargs)  # type: ignore[arg-type]


def test_parse_types() -> None:
    assert parse_types("all") == ALL_TYPES
    assert parse_types(" ALL ") == ALL_TYPES
    assert parse_types("none") == ()
    assert parse_types("") == ()
    assert parse_types("cnc_spindle, conveyor") == ("cnc_spindle", "conveyor")
    assert parse_types("conveyor,cnc_spindle,conveyor") == ("conveyor", "cnc_spindle")
    with pytest.raises(ValueError, match=r"unknown simulator type\(s\): lathe, oven") as info:
        parse_types("cnc_spindle,lathe,oven")
    for name in ALL_TYPES:
        assert name in str(info.value)


def test_the_pure_core_does_not_import_the_mqtt_client() -> None:
    """The hub reads NORMAL_RANGES without the edge install's MQTT client."""
    code = (
        "import sys\n"
        "from edge_gateway.simulators import NORMAL_RANGES, build_fleet\n"
        "import edge_gateway.simulators.catalog\n"
        "assert 'paho' not in sys.modules, 'paho imported'\n"
        "from edge_gateway.simulators import SimulatorConfig\n"
        "assert 'paho' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_public_api_names_resolve() -> None:
    import edge_gateway.simulators as simulators

    for name in simulators.__all__:
        assert getattr(simulators, name) is not None, name
    with pytest.raises(AttributeError):
        simulators.no_such_name  # noqa: B018
