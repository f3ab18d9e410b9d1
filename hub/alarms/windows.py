"""Maintenance windows: what one is, whether it is active at a time, and which devices it covers.

Pure: no I/O and no clock of its own (times are epoch ms, UTC). Two schedules, kept small:

* ``once``: from ``start`` (inclusive) to ``end`` (exclusive), epoch ms.
* ``weekly``: on each of ``weekdays`` (0 = Monday .. 6 = Sunday) at the local wall-clock time
  ``start`` ("HH:MM") in ``timezone`` (IANA name), for ``duration_minutes`` of elapsed time
  (at most a week). An occurrence may run past midnight into the next day. On the day daylight
  saving time begins, a start time the clocks skip begins at the same instant as an hour later;
  on the day it ends, a start time that happens twice begins at its first occurrence.

A scope lists sites, gateways, device types and devices; a device is covered if any of its own
is listed (an empty scope is refused: a window must say what it covers). A gateway's own alerts
(no device) are covered by the gateway's id only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_NAME_CHARS",
    "SUPPRESS",
    "DeviceRef",
    "MaintenanceWindow",
    "Once",
    "Scope",
    "Suppress",
    "Weekly",
    "WindowSpec",
    "active_until",
    "covering",
    "parse_spec",
]

Suppress = Literal["notifications", "alerts"]
SUPPRESS: tuple[Suppress, ...] = get_args(Suppress)
MAX_NAME_CHARS: Final = 100
MAX_COMMENT_CHARS: Final = 1000
MAX_SCOPE_ITEMS: Final = 500
MAX_WEEKLY_MINUTES: Final = 7 * 24 * 60
WEEKDAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MINUTE_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class Once:
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive

    def to_json(self) -> dict[str, Any]:
        return {"kind": "once", "start": self.start, "end": self.end}


@dataclass(frozen=True, slots=True)
class Weekly:
    weekdays: tuple[int, ...]  # sorted, distinct, 0 = Monday
    start: str  # "HH:MM", local
    duration_minutes: int
    timezone: str  # IANA name

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "weekly",
            "weekdays": list(self.weekdays),
            "start": self.start,
            "duration_minutes": self.duration_minutes,
            "timezone": self.timezone,
        }


Schedule = Once | Weekly


@dataclass(frozen=True, slots=True)
class Scope:
    sites: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    device_types: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {
            "sites": list(self.sites),
            "gateways": list(self.gateways),
            "device_types": list(self.device_types),
            "devices": list(self.devices),
        }

    @property
    def empty(self) -> bool:
        return not (self.sites or self.gateways or self.device_types or self.devices)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What a scope can match of one alert's source. ``device_id`` None: a gateway's own alert."""

    device_id: str | None
    gateway_id: str | None
    site: str | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """What an admin writes: checked by `parse_spec`."""

    name: str
    suppress: Suppress
    schedule: Schedule
    scope: Scope
    comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "suppress": self.suppress,
            "schedule": self.schedule.to_json(),
            "scope": self.scope.to_json(),
            "comment": self.comment,
        }


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    spec: WindowSpec
    created_by: str
    created_at: int
    updated_by: str
    updated_at: int

    @property
    def name(self) -> str:
        return self.spec.name

    def active_until(self, at_ms: int) -> int | None:
        return active_until(self.spec.schedule, at_ms)

    def covers(self, ref: DeviceRef) -> bool:
        return covers(self.spec.scope, ref)

    def to_json(self, now_ms: int | None = None) -> dict[str, Any]:
        """With ``now_ms``: also whether it is active then and until when."""
        out = {
            "id": self.id,
            **self.spec.to_json(),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        }
        if now_ms is not None:
            until = self.active_until(now_ms)
            out["active"] = until is not None
            out["active_until"] = until
        return out


# -- when ------------------------------------------------------------------------------------


def active_until(schedule: Schedule, at_ms: int) -> int | None:
    """The end (epoch ms, exclusive) of the occurrence active at ``at_ms``, or None if none is.
    Overlapping weekly occurrences (a duration longer than the gap) give the latest end."""
    if isinstance(schedule, Once):
        return schedule.end if schedule.start <= at_ms < schedule.end else None
    ends = [end for start, end in _weekly_occurrences(schedule, at_ms) if start <= at_ms < end]
    return max(ends, default=None)


def _weekly_occurrences(w: Weekly, at_ms: int) -> Iterable[tuple[int, int]]:
    """The occurrences that started on the local days up to a week before ``at_ms``'s."""
    zone = ZoneInfo(w.timezone)
    today = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone).date()
    hour, minute = (int(part) for part in w.start.split(":"))
    duration_ms = w.duration_minutes * _MINUTE_MS
    for back in range(8):
        day: date = today - timedelta(days=back)
        if day.weekday() in w.weekdays:
            local = datetime.combine(day, time(hour, minute), tzinfo=zone)
            start = _wall_to_ms(local)
            yield start, start + duration_ms


def _wall_to_ms(local: datetime) -> int:
    """A wall-clock time as epoch ms; one the clocks skipped moves forward by the gap (fold=0
    reads it with the offset before the change), one they repeat is its first occurrence."""
    return int(local.timestamp() * 1000)


# -- what --------------------------------------------------------------------------------------


def covers(scope: Scope, ref: DeviceRef) -> bool:
    if ref.device_id is None:
        return ref.gateway_id is not None and ref.gateway_id in scope.gateways
    return (
        ref.device_id in scope.devices
        or (ref.site is not None and ref.site in scope.sites)
        or (ref.type is not None and ref.type in scope.device_types)
        or (ref.gateway_id is not None and ref.gateway_id in scope.gateways)
    )


def covering(
    windows: Iterable[MaintenanceWindow],
    ref: DeviceRef,
    at_ms: int,
    *,
    suppress: Suppress = "notifications",
) -> list[MaintenanceWindow]:
    """The windows active at ``at_ms`` that cover ``ref`` and suppress at least ``suppress``
    (a window that suppresses alerts suppresses their notifications too), by name."""
    found = [
        w
        for w in windows
        if (suppress == "notifications" or w.spec.suppress == "alerts")
        and w.covers(ref)
        and w.active_until(at_ms) is not None
    ]
    return sorted(found, key=lambda w: w.name)


# -- checking what an admin wrote ----------------------------------------------------------------


def parse_spec(data: Mapping[str, Any]) -> WindowSpec:
    """A window as the API and the page send it, checked whole; ValueError names the field."""
    _no_unknown(data, {"name", "suppress", "schedule", "scope", "comment"}, "")
    name = _text(data.get("name"), "name", MAX_NAME_CHARS)
    suppress = data.get("suppress", "notifications")
    if suppress not in SUPPRESS:
        raise ValueError(f"suppress must be one of {', '.join(SUPPRESS)}, got {suppress!r}")
    comment = data.get("comment")
    if comment is not None:
        comment = _text(comment, "comment", MAX_COMMENT_CHARS, required=False) or None
    return WindowSpec(
        name=name,
        suppress=suppress,
        schedule=parse_schedule(data.get("schedule")),
        scope=parse_scope(data.get("scope")),
        comment=comment,
    )


def parse_schedule(data: object) -> Schedule:
    if not isinstance(data, Mapping):
        raise ValueError("schedule must be an object with kind 'once' or 'weekly'")
    kind = data.get("kind")
    if kind == "once":
        _no_unknown(data, {"kind", "start", "end"}, "schedule.")
        start = _epoch_ms(data.get("start"), "schedule.start")
        end = _epoch_ms(data.get("end"), "schedule.end")
        if end <= start:
            raise ValueError("schedule.end must be after schedule.start")
        return Once(start, end)
    if kind == "weekly":
        return _parse_weekly(data)
    raise ValueError(f"schedule.kind must be 'once' or 'weekly', got {kind!r}")


def _parse_weekly(data: Mapping[str, Any]) -> Weekly:
    _no_unknown(data, {"kind", "weekdays", "start", "duration_minutes", "timezone"}, "schedule.")
    days = data.get("weekdays")
    if not isinstance(days, list) or not days:
        raise ValueError("schedule.weekdays must be a non-empty list of 0 (Monday) .. 6 (Sunday)")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
        raise ValueError(f"schedule.weekdays must hold 0 (Monday) .. 6 (Sunday), got {days!r}")
    start = data.get("start")
    if not isinstance(start, str) or not _HHMM.match(start):
        raise ValueError(f"schedule.start must be a local time 'HH:MM', got {start!r}")
    minutes = data.get("duration_minutes")
    if (
        not isinstance(minutes, int)
        or isinstance(minutes, bool)
        or not 1 <= minutes <= MAX_WEEKLY_MINUTES
    ):
        raise ValueError(
            f"schedule.duration_minutes must be 1..{MAX_WEEKLY_MINUTES}, got {minutes!r}"
        )
    zone = data.get("timezone")
    if not isinstance(zone, str) or not _known_zone(zone):
        raise ValueError(f"schedule.timezone must be an IANA time zone name, got {zone!r}")
    return Weekly(tuple(sorted(set(days))), start, minutes, zone)


def _known_zone(name: str) -> bool:
    if not name or "\x00" in name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_scope(data: object) -> Scope:
    if not isinstance(data, Mapping):
        raise ValueError("scope must be an object with sites, gateways, device_types, devices")
    fields = ("sites", "gateways", "device_types", "devices")
    _no_unknown(data, set(fields), "scope.")
    lists = [_names(data.get(f, []), f"scope.{f}") for f in fields]
    scope = Scope(*lists)
    if scope.empty:
        raise ValueError(
            "scope must list at least one site, gateway, device type or device "
            "(an empty scope would cover nothing)"
        )
    return scope


def _names(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of names")
    if len(value) > MAX_SCOPE_ITEMS:
        raise ValueError(f"{field} must list at most {MAX_SCOPE_ITEMS} names")
    names = [v.strip() for v in value]
    for n in names:
        if not n or len(n) > 256 or "\x00" in n:
            raise ValueError(f"{field} holds an empty, too long or invalid name: {n!r}")
    return tuple(sorted(set(names)))


def _text(value: object, field: str, max_chars: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    value = value.strip()
    if required and not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > max_chars:
        raise ValueError(f"{field} must be at most {max_chars} characters")
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    return value


_MAX_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _epoch_ms(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_MS:
        raise ValueError(f"{field} must be epoch milliseconds (0..{_MAX_MS}), got {value!r}")
    return value


def _no_unknown(data: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]} is not a known field")
