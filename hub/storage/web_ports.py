"""The ports of the web process's storage: what the dashboard and the API read and do, as
`typing.Protocol` classes. Each has a real adapter on PostgreSQL and Redis and an in-memory one
(`hub.storage.memory_web`), held to the same contract (tests/contracts/web_storage.py).

* `ReadModel`: devices, their latest values, gateways, series and alerts, as pages show them
  (`hub.storage.read_model.PostgresReadModel`).
* `AlertWrites`: acknowledging and clearing one alert (`hub.storage.postgres.Database`).
* `AlertEvents`: alert events published to the live channel, best effort
  (`hub.storage.read_model.RedisAlertEvents`).
* `Accounts`: users, dashboard sessions and API tokens, each change audited in its own
  transaction (`hub.storage.accounts.PostgresAccounts`).
* `AuditTrail`: the append-only audit log (`hub.storage.audit_log.PostgresAuditLog`).
* `ThrottleStore`: the login throttle's counts (`hub.storage.throttle_store`).
* `LiveFeed`: the live channels, read by the fan-out (`hub.storage.live_feed.RedisLiveFeed`; the
  in-memory hub hands its messages over itself).
"""

from __future__ import annotations

from typing import Protocol

from hub.storage.audit_model import Actor, AuditEntry, AuditEvent, AuditFilter
from hub.storage.credentials import PasswordCheck, TokenCheck, TokenInfo
from hub.storage.live_feed import LiveFeed
from hub.storage.throttle_store import ThrottleStore
from hub.storage.web_model import (
    AlertFilter,
    AlertRow,
    DeviceFilter,
    DeviceView,
    GatewayView,
    Page,
    Principal,
    Role,
    Series,
)

__all__ = [
    "Accounts",
    "AlertEvents",
    "AlertWrites",
    "AuditTrail",
    "LiveFeed",
    "ReadModel",
    "ThrottleStore",
]


class ReadModel(Protocol):
    """What the pages and the API read. Filters are validated (ValueError names the field); a
    store of live values that is away degrades to none (no latest values, no gateways)."""

    async def devices(self, f: DeviceFilter) -> Page[DeviceView]:
        """By id, filtered, with each device's latest values and active alerts."""
        ...

    async def device(self, device_id: str) -> DeviceView | None: ...

    async def facets(self) -> tuple[list[str], list[str]]:
        """The distinct sites and (known) types of the devices, sorted."""
        ...

    async def gateways(self) -> list[GatewayView]:
        """Every gateway heard from, by id, online unless its last heartbeat is too old."""
        ...

    async def series(
        self, device_id: str, metric: str, start: int, end: int, max_points: int
    ) -> Series:
        """One metric in ``[start, end)``, at most ``max_points`` (`hub.storage.series`)."""
        ...

    async def alerts(self, f: AlertFilter) -> Page[AlertRow]:
        """Newest first, filtered."""
        ...

    async def alert_markers(self, device_id: str, start: int, end: int) -> list[AlertRow]:
        """The device's alerts open at any time in ``[start, end)``, newest first."""
        ...

    async def ping(self) -> dict[str, bool]:
        """Reachability of each store behind the model, by name, for readiness."""
        ...


class AlertWrites(Protocol):
    async def acknowledge_alert(
        self, alert_id: int, by: str, comment: str | None
    ) -> AlertRow | None:
        """Mark an alert (open or cleared) acknowledged by ``by``, now; None if no such id."""
        ...

    async def clear_alert(self, alert_id: int, by: str) -> AlertRow | None:
        """Clear an open alert by hand, now; one already cleared comes back unchanged; None if
        no such id."""
        ...

    async def get_alert(self, alert_id: int) -> AlertRow | None: ...


class AlertEvents(Protocol):
    async def publish_alert(self, data: bytes) -> None:
        """Publish an encoded alert event to live subscribers; never raises."""
        ...


class Accounts(Protocol):
    """Users, sessions and tokens. Writes check their values (ValueError) and record their
    audit event together with the change."""

    async def add_user(self, name: str, password: str, role: Role, *, actor: Actor) -> bool:
        """Create (True) or update the user; a new password ends the user's sessions."""
        ...

    async def check_password(self, name: str, password: str) -> PasswordCheck: ...

    async def authenticate(self, name: str, password: str) -> Principal | None: ...

    async def get_user(self, name: str) -> Principal | None: ...

    async def delete_user(self, name: str, *, actor: Actor) -> bool: ...

    async def list_users(self) -> list[Principal]: ...

    async def create_session(self, principal: Principal, hours: float, client: str | None) -> str:
        """A new session id (only its hash is kept)."""
        ...

    async def session_user(self, session_id: str) -> Principal | None:
        """The session's user as they are now; None if ended, expired or the user is gone."""
        ...

    async def end_session(self, session_id: str) -> bool: ...

    async def end_user_sessions(self, name: str) -> int: ...

    async def create_token(
        self, name: str, role: Role, *, actor: Actor, expires_in_s: float | None = None
    ) -> str:
        """A new token's secret, returned once; ValueError while an active one has the name."""
        ...

    async def check_token(self, token: str) -> TokenCheck: ...

    async def verify_token(self, token: str) -> Principal | None: ...

    async def revoke_token(self, name: str, *, actor: Actor) -> bool: ...

    async def list_tokens(self) -> list[TokenInfo]: ...


class AuditTrail(Protocol):
    async def record(self, event: AuditEvent) -> None: ...

    async def entries(self, f: AuditFilter) -> Page[AuditEntry]:
        """Newest first, filtered; the total counts every page."""
        ...
