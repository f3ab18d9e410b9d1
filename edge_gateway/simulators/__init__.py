"""Simulated factory devices: pure machine models and faults, plus an MQTT runner.

The pure part (catalog, machines, anomalies, device, fleet) imports only the standard library, so
the hub can read `NORMAL_RANGES` for its default alert rules without the MQTT client installed;
the runner's names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edge_gateway.simulators.anomalies import AnomalyKind, AnomalyRecord
from edge_gateway.simulators.catalog import ALL_TYPES, METRICS, NORMAL_RANGES, MetricSpec
from edge_gateway.simulators.device import SimulatedDevice, TelemetryPayload
from edge_gateway.simulators.fleet import FleetSpec, build_fleet, derive_seed, parse_types

if TYPE_CHECKING:
    from edge_gateway.simulators.runner import (
        SimulatorConfig,
        SimulatorRunner,
        SimulatorStats,
        run_simulators,
    )

__all__ = [
    "ALL_TYPES",
    "METRICS",
    "NORMAL_RANGES",
    "AnomalyKind",
    "AnomalyRecord",
    "FleetSpec",
    "MetricSpec",
    "SimulatedDevice",
    "SimulatorConfig",
    "SimulatorRunner",
    "SimulatorStats",
    "TelemetryPayload",
    "build_fleet",
    "derive_seed",
    "parse_types",
    "run_simulators",
]

_RUNNER_NAMES = frozenset(
    {"SimulatorConfig", "SimulatorRunner", "SimulatorStats", "run_simulators"}
)


def __getattr__(name: str) -> Any:
    if name in _RUNNER_NAMES:
        return getattr(importlib.import_module("edge_gateway.simulators.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
