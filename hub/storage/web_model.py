"""What the dashboard's stores take and return (`hub.storage.web_ports`): plain frozen values, no
I/O. Times are epoch ms (UTC). The web layer re-exports them from `hub.web.model`, with the role
policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

from hub.storage.live_messages import LiveReading
from hub.storage.model import AlertRow
from hub.storage.redis_values import GatewayHealth

__all__ = [
    "ALERT_STATUSES",
    "DEVICE_STATES",
    "MAX_PAGE",
    "ROLES",
    "SEVERITIES",
    "AlertFilter",
    "AlertRow",
    "AlertStatus",
    "DeviceFilter",
    "DeviceView",
    "GatewayView",
    "LiveReading",
    "Page",
    "Principal",
    "Role",
    "Series",
    "Severity",
    "check_role",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # in rank order: viewer < operator < admin
Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
DeviceState = Literal["online", "offline", "unknown"]
DEVICE_STATES: tuple[DeviceState, ...] = get_args(DeviceState)
AlertStatus = Literal["active", "cleared", "unacknowledged", "all"]
ALERT_STATUSES: tuple[AlertStatus, ...] = get_args(AlertStatus)
MAX_PAGE = 1000

T = TypeVar("T")


def check_role(value: str) -> Role:
    """``value`` as a Role, or ValueError naming the allowed ones."""
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"unknown role {value!r}; expected one of {', '.join(ROLES)}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a logged-in user (its name) or an API token ("token:<token name>")."""

    name: str
    role: Role

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role}


@dataclass(frozen=True, slots=True)
class DeviceView:
    device_id: str
    site: str
    type: str | None
    gateway_id: str
    state: DeviceState
    last_seen: int | None
    metrics: tuple[str, ...]  # every metric ever reported, sorted
    latest: dict[str, float | bool]  # from Redis iot:latest:{id}; {} if Redis is away
    latest_ts: int | None
    active_alerts: int
    worst_severity: Severity | None  # of the active alerts

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "site": self.site,
            "type": self.type,
            "gateway_id": self.gateway_id,
            "state": self.state,
            "last_seen": self.last_seen,
            "metrics": list(self.metrics),
            "latest": dict(self.latest),
            "latest_ts": self.latest_ts,
            "active_alerts": self.active_alerts,
            "worst_severity": self.worst_severity,
        }


class GatewayView(GatewayHealth):
    """A gateway's latest health with its state as the hub judges it: offline once its last
    heartbeat reached the hub more than `gateway_offline_after_s` ago. The API's `GatewayOut`
    is built from it."""

    state: Literal["online", "offline"]

    @classmethod
    def of(cls, health: GatewayHealth, state: Literal["online", "offline"]) -> GatewayView:
        return cls(**health.model_dump(), state=state)


# Where a series came from: `readings`, or a rollup tier (readings_1m, readings_1h, readings_1d).
SeriesSource = Literal["raw", "1m", "1h", "1d"]


@dataclass(frozen=True, slots=True)
class Series:
    device_id: str
    metric: str
    source: SeriesSource
    start: int
    end: int
    ts: list[int]
    values: list[float]
    downsampled: bool  # True if points were dropped to fit max_points

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "metric": self.metric,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "ts": list(self.ts),
            "values": list(self.values),
            "downsampled": self.downsampled,
        }


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        """Items that have ``to_json`` (every model here) are converted; others pass as they are."""
        return {
            "items": [_json(item) for item in self.items],
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }


def _json(item: object) -> Any:
    to_json = getattr(item, "to_json", None)
    return to_json() if callable(to_json) else item


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be within 1..{MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    site: str | None = None
    type: str | None = None
    state: str | None = None  # one of DEVICE_STATES
    search: str | None = None  # case-insensitive substring of device_id
    limit: int = 100  # 1..1000
    offset: int = 0
    # Only these devices (a place in the asset hierarchy, hub.metadata); None: no such filter.
    device_ids: frozenset[str] | None = None

    def validate(self) -> DeviceFilter:
        """Itself, or ValueError with a clear message (the API turns it into 4xx)."""
        _check_page(self.limit, self.offset)
        if self.state is not None and self.state not in DEVICE_STATES:
            raise ValueError(
                f"unknown device state {self.state!r}; expected one of {', '.join(DEVICE_STATES)}"
            )
        return self


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: AlertStatus = "active"
    severity: Severity | None = None
    device_id: str | None = None
    limit: int = 100
    offset: int = 0

    def validate(self) -> AlertFilter:
        _check_page(self.limit, self.offset)
        if self.status not in ALERT_STATUSES:
            raise ValueError(
                f"unknown alert status {self.status!r}; expected one of {', '.join(ALERT_STATUSES)}"
            )
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(
                f"unknown severity {self.severity!r}; expected one of {', '.join(SEVERITIES)}"
            )
        return self
