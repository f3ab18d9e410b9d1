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
from typing import Any, Final, Protocol, TypeGuard

import orjson

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


class _LiveFields(Protocol):
    """What a live reading is made of: a `LiveReading`, or a `NormalisedReading` as it is (the
    worker publishes without building a `LiveReading` per reading first)."""

    @property
    def site(self) -> str: ...
    @property
    def device_id(self) -> str: ...
    @property
    def type(self) -> str | None: ...
    @property
    def ts(self) -> int: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def metrics(self) -> Mapping[str, float | bool]: ...


def encode_readings_message(readings: Iterable[_LiveFields]) -> str:
    """Compact JSON, by orjson: a seventh of the standard encoder's cost per reading, which
    was a tenth of the worker's CPU at full rate. (It writes `1e-7` where the standard one
    writes `1e-07`, the same number; and NaN or Infinity as null where `compact_json` refuses
    them, but no reading holds either: the wire models refuse them.)"""
    body = {
        "v": READINGS_MESSAGE_VERSION,
        "readings": [
            {
                "site": r.site,
                "device_id": r.device_id,
                "type": r.type,
                "ts": r.ts,
                "seq": r.seq,
                "metrics": r.metrics,
            }
            for r in readings
        ],
    }
    return orjson.dumps(body, default=_plain).decode()


def _plain(value: object) -> object:
    # orjson writes dicts only; a reading's metrics may be any mapping.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


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
