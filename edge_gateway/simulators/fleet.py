"""Which devices to simulate: type selection, device ids and per-device seeds. Pure."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from edge_gateway.simulators.anomalies import AnomalyRecord
from edge_gateway.simulators.catalog import ALL_TYPES, DEVICE_ID_PREFIX
from edge_gateway.simulators.device import SimulatedDevice
from protocol.topics import is_identifier


def parse_types(spec: str) -> tuple[str, ...]:
    """`all`, `none` (or empty) or a comma list of type names, e.g. `cnc_spindle,conveyor`."""
    text = spec.strip().lower()
    if text == "all":
        return ALL_TYPES
    if text in ("", "none"):
        return ()
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in ALL_TYPES]
    if unknown:
        raise ValueError(
            f"unknown simulator type(s): {', '.join(unknown)}; "
            f"valid: all, none or a comma list of {', '.join(ALL_TYPES)}"
        )
    return tuple(dict.fromkeys(names))  # drop repeats, keep order


def device_id(device_type: str, number: int) -> str:
    """`cnc-01` ... `cnc-99`, `cnc-100`: the same device keeps its id whatever the fleet size."""
    return f"{DEVICE_ID_PREFIX[device_type]}-{number:02d}"


def derive_seed(seed: int, device_id: str, stream: str) -> int:
    """A seed for one random stream of one device, independent of fleet size and order."""
    digest = hashlib.sha256(f"{seed}\x00{device_id}\x00{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class FleetSpec:
    types: tuple[str, ...] = ALL_TYPES
    count_per_type: int = 1
    site: str = "site-1"
    rate_hz: float = 1.0
    seed: int = 42
    anomaly_probability: float = 0.001

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in ALL_TYPES]
        if unknown:
            raise ValueError(f"unknown device type(s) {unknown}; valid: {', '.join(ALL_TYPES)}")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"device types repeat: {self.types}")
        if self.count_per_type < 0:
            raise ValueError(f"count_per_type must be >= 0, got {self.count_per_type}")
        if not is_identifier(self.site):
            raise ValueError(f"site {self.site!r} must match [A-Za-z0-9_.-]{{1,64}}")
        if not (math.isfinite(self.rate_hz) and 0.0 < self.rate_hz <= 1000.0):
            raise ValueError(f"rate_hz must be in (0, 1000], got {self.rate_hz}")
        if not 0.0 <= self.anomaly_probability <= 1.0:
            raise ValueError(
                f"anomaly_probability must be in [0, 1], got {self.anomaly_probability}"
            )

    def device_ids(self) -> list[tuple[str, str]]:
        """(device_id, type) for every device, grouped by type in the order given."""
        return [(device_id(t, n), t) for t in self.types for n in range(1, self.count_per_type + 1)]


def build_fleet(
    spec: FleetSpec, on_anomaly: Callable[[AnomalyRecord], None] | None = None
) -> list[SimulatedDevice]:
    return [
        SimulatedDevice(
            did,
            device_type,
            model_rng=random.Random(derive_seed(spec.seed, did, "model")),
            anomaly_rng=random.Random(derive_seed(spec.seed, did, "anomaly")),
            anomaly_probability=spec.anomaly_probability,
            on_anomaly=on_anomaly,
        )
        for did, device_type in spec.device_ids()
    ]
