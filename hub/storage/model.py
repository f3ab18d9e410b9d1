"""What the PostgreSQL adapter takes and returns, and the pure shaping of a batch: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from hub.windows import bucket_start
from protocol import NormalisedReading

Severity = Literal["warning", "critical"]
AlertState = Literal["active", "cleared"]
DeviceState = Literal["online", "offline", "unknown"]
ALERT_STATES: tuple[AlertState, ...] = ("active", "cleared")
DEVICE_STATES: tuple[DeviceState, ...] = ("online", "offline", "unknown")

# One row of `readings` as staged for the database: (device_id, metric, ts_ms, value, seq).
ReadingRow = tuple[str, str, int, float, int | None]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one ``write_readings`` batch."""

    rows: int  # readings rows offered: one per metric of each reading
    inserted: int  # rows that were new; the rest were replays or duplicates, absorbed
    devices: int  # distinct devices in the batch (each upserted into `devices`)


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """What one batch says about one device, for the `devices` upsert."""

    device_id: str
    site: str
    type: str | None
    gateway_id: str
    first_ms: int
    last_ms: int
    metrics: tuple[str, ...]  # sorted, distinct


def flatten_readings(readings: Iterable[NormalisedReading]) -> list[ReadingRow]:
    """One row per metric. Booleans become 1.0 (true) and 0.0 (false), the schema's encoding."""
    return [
        (r.device_id, metric, r.ts, float(value), r.seq)
        for r in readings
        for metric, value in r.metrics.items()
    ]


def summarise_devices(readings: Iterable[NormalisedReading]) -> list[DeviceSeen]:
    """Per device, sorted by id: time span, metric names, and site, type and gateway as of the
    newest reading (a device can move to another gateway; a missing type keeps the last known)."""
    newest: dict[str, NormalisedReading] = {}
    first: dict[str, int] = {}
    metrics: dict[str, set[str]] = {}
    types: dict[str, tuple[int, str]] = {}
    for r in readings:
        if r.device_id not in newest or r.ts >= newest[r.device_id].ts:
            newest[r.device_id] = r
        first[r.device_id] = min(first.get(r.device_id, r.ts), r.ts)
        metrics.setdefault(r.device_id, set()).update(r.metrics)
        if r.type is not None and (r.device_id not in types or r.ts >= types[r.device_id][0]):
            types[r.device_id] = (r.ts, r.type)
    return [
        DeviceSeen(
            device_id=device_id,
            site=r.site,
            type=types[device_id][1] if device_id in types else None,
            gateway_id=r.gateway_id,
            first_ms=first[device_id],
            last_ms=r.ts,
            metrics=tuple(sorted(metrics[device_id])),
        )
        for device_id, r in sorted(newest.items())
    ]


class AlertTransitionLike(Protocol):
    """The shape of ``hub.rules.model.AlertTransition``, structurally, so storage does not import
    the rules package (and accepts any object with these attributes)."""

    @property
    def kind(self) -> Literal["raised", "updated", "cleared"]: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def gateway_id(self) -> str | None: ...
    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def metric(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def message(self) -> str: ...
    @property
    def ts(self) -> int: ...  # epoch ms


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One row of `alerts`; timestamps as epoch ms."""

    id: int
    device_id: str | None
    gateway_id: str | None
    rule: str
    severity: Severity
    state: AlertState
    acknowledged: bool
    ack_by: str | None
    ack_at: int | None
    ack_comment: str | None
    metric: str | None
    value: float | None
    message: str
    raised_at: int
    updated_at: int
    cleared_at: int | None
    cleared_by: str | None
    occurrences: int
    # Set while shelved by hand (db/0006): shelved means shelved_until > now (docs/alarms.md).
    shelved_by: str | None = None
    shelved_at: int | None = None
    shelved_until: int | None = None
    shelve_reason: str | None = None

    def shelved(self, now_ms: int) -> bool:
        return self.shelved_until is not None and self.shelved_until > now_ms

    def to_json(self) -> dict[str, Any]:
        """Every field by name, in order: the `iot.alerts` event's body, and what the API's
        `AlertOut` documents. (Not `dataclasses.asdict`: its deep copy costs ten times more.)"""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def rollup_bucket_ms(ts_ms: int) -> int:
    """Start of the UTC minute holding ``ts_ms``: the `readings_1m` bucket."""
    return bucket_start(ts_ms)


def distinct_buckets(buckets: Iterable[tuple[str, str, int]]) -> Sequence[tuple[str, str, int]]:
    """(device_id, metric, any ms in the minute) -> distinct (device_id, metric, bucket start)."""
    return sorted({(d, m, rollup_bucket_ms(ms)) for d, m, ms in buckets})
