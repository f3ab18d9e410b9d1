"""The values of the hub's Redis keys (`hub.storage.redis_keys`): a type, one encoder and one
decoder each. Pure: no I/O.

A stored value that does not decode is not an error anyone can act on (Redis holds nothing
PostgreSQL cannot rebuild, and the next write replaces it): a decoder returns None for it, or
skips the one unreadable field of a hash, and the reader goes on without.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from hub.storage.redis_keys import compact_json, text
from protocol import EdgeMetrics
from protocol.models import EpochMs

__all__ = [
    "DevicePresence",
    "GatewayHealth",
    "LatestValues",
    "Presence",
    "decode_device_presence",
    "decode_gateway_health",
    "decode_latest",
    "encode_device_presence",
    "encode_gateway_health",
    "encode_latest",
]

# -- iot:latest:{device_id} ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestValues:
    """A device's latest-values hash. Read back, a field may be missing (None) or unreadable
    (left out of `metrics`); numbers come back as floats, as the database holds them."""

    metrics: dict[str, float | bool]
    ts: int | None  # epoch ms of the newest reading applied
    site: str | None
    type: str | None


def encode_latest(
    metrics: Mapping[str, float | bool], *, ts: int, site: str, type: str | None
) -> dict[str, str]:
    """The hash fields to set; `_type` only when known, so a reading without one keeps the
    type an earlier reading stored."""
    fields = {name: compact_json(value) for name, value in metrics.items()}
    fields["_ts"] = str(ts)
    fields["_site"] = site
    if type is not None:
        fields["_type"] = type
    return fields


def decode_latest(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> LatestValues:
    """An HGETALL reply (bytes or text); unreadable fields are skipped."""
    metrics: dict[str, float | bool] = {}
    ts: int | None = None
    private: dict[str, str] = {}
    for raw_name, raw_value in fields.items():
        try:
            name, value = text(raw_name), text(raw_value)
        except UnicodeDecodeError:
            continue
        if name == "_ts":
            with contextlib.suppress(ValueError):
                ts = int(value)
        elif name.startswith("_"):
            private[name] = value
        elif (metric := _metric_value(value)) is not None:
            metrics[name] = metric
    return LatestValues(metrics, ts, private.get("_site"), private.get("_type"))


def _metric_value(encoded: str) -> float | bool | None:
    try:
        value = json.loads(encoded)
    except ValueError:
        return None
    if isinstance(value, bool):
        return value
    return float(value) if isinstance(value, int | float) else None


# -- iot:device_state ----------------------------------------------------------------------------


Presence: TypeAlias = Literal["online", "offline"]


class DevicePresence(BaseModel):
    """A device's presence as the status agent last applied it."""

    model_config = ConfigDict(frozen=True)

    state: Presence
    ts: StrictInt  # epoch ms of the status
    site: StrictStr
    gateway_id: StrictStr


def encode_device_presence(presence: DevicePresence) -> str:
    return compact_json(presence.model_dump())


def decode_device_presence(raw: bytes | str) -> DevicePresence | None:
    try:
        return DevicePresence.model_validate_json(raw)
    except ValidationError:
        return None


# -- iot:gateways --------------------------------------------------------------------------------


class GatewayHealth(EdgeMetrics):
    """A gateway's latest `iot.edge-metrics` record as it sent it, plus when the hub received
    it: the hub's own clock, so that a gateway whose clock is off cannot look alive."""

    received_ts: EpochMs

    @classmethod
    def received(cls, metrics: EdgeMetrics, received_ts: int) -> GatewayHealth:
        return cls(**metrics.model_dump(), received_ts=received_ts)

    @property
    def heard(self) -> int:
        """When the gateway was last heard of, as the alert engine judges liveness: the earlier
        of its own clock and the hub's (a gateway clock running ahead must not extend its life).
        """
        return min(self.ts, self.received_ts)


def encode_gateway_health(health: GatewayHealth) -> str:
    """The record's own JSON with `received_ts` last."""
    return compact_json(health.model_dump(mode="json"))


def decode_gateway_health(raw: bytes | str) -> GatewayHealth | None:
    try:
        return GatewayHealth.model_validate_json(raw)
    except ValidationError:
        return None
