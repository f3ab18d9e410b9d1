"""The messages of the hub's pub/sub channels (`hub.storage.redis_keys`): one encoder and one
decoder each. Pure: no I/O.

A message that does not decode is skipped by the reader (and counted there); so is a reading
inside a message that is not one, while the message's other readings go through.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeGuard

from hub.storage.redis_keys import compact_json
from protocol import NormalisedReading

__all__ = [
    "LiveReading",
    "decode_alert_message",
    "decode_readings_message",
    "encode_readings_message",
]

READINGS_MESSAGE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class LiveReading:
    """One reading as the dashboard and WebSocket clients get it live: the normalised reading
    without what only the pipeline needs (gateway, receive time). Shared by every subscriber
    that gets it: read, never modify."""

    site: str
    device_id: str
    type: str | None
    ts: int  # epoch ms
    seq: int | None
    metrics: Mapping[str, float | bool]

    @classmethod
    def of(cls, reading: NormalisedReading) -> LiveReading:
        return cls(
            reading.site, reading.device_id, reading.type, reading.ts, reading.seq, reading.metrics
        )

    def to_json(self) -> dict[str, Any]:
        """Every field by name, in order, as it goes on the wire: Redis and the WebSocket API
        alike."""
        return {name: getattr(self, name) for name in _LIVE_READING_FIELDS}


_LIVE_READING_FIELDS: Final = tuple(f.name for f in fields(LiveReading))


def encode_readings_message(readings: Iterable[LiveReading]) -> str:
    return compact_json(
        {"v": READINGS_MESSAGE_VERSION, "readings": [r.to_json() for r in readings]}
    )


def decode_readings_message(data: bytes | str) -> list[LiveReading] | None:
    """The readings of one message, or None unless it is a JSON object with a `readings` list.
    Items of the list that are not readings are left out."""
    body = _json_object(data)
    items = None if body is None else body.get("readings")
    if not isinstance(items, list):
        return None
    return [reading for item in items if (reading := _live_reading(item)) is not None]


def decode_alert_message(data: bytes | str) -> dict[str, Any] | None:
    """The alert event (`{"v", "event", **AlertRow}`), passed on as it is; None unless it is a
    JSON object."""
    return _json_object(data)


def _json_object(data: bytes | str) -> dict[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:  # UnicodeDecodeError included
        return None
    return body if isinstance(body, dict) else None


def _live_reading(item: object) -> LiveReading | None:
    if not isinstance(item, dict):
        return None
    site, device_id, type_, ts, seq, metrics = (
        item.get(k) for k in ("site", "device_id", "type", "ts", "seq", "metrics")
    )
    if not (
        isinstance(site, str)
        and isinstance(device_id, str)
        and (type_ is None or isinstance(type_, str))
        and _is_int(ts)
        and (seq is None or _is_int(seq))
        and isinstance(metrics, dict)
        and all(_is_metric_value(v) for v in metrics.values())
    ):
        return None
    return LiveReading(site, device_id, type_, ts, seq, metrics)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_metric_value(value: object) -> bool:
    # Python's json reads NaN and Infinity, which no reading has and the WebSocket API's
    # encoder (allow_nan=False) would refuse.
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))
