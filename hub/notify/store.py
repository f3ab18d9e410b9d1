"""The notification storage port: the outbox, deliveries, attempts, and channels and routes as
configured; `hub.storage.notify_postgres.PostgresNotifyStore` implements it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hub.notify.config import Channel, NotificationConfig, Route
from hub.storage.model import AlertRow

__all__ = ["Attempt", "ClaimedDelivery", "ConfigEntry", "NotifyStore", "Outcome"]

Outcome = Literal["delivered", "failed", "suppressed"]
Source = Literal["file", "api"]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to this dispatcher, with what its message needs."""

    id: int
    event: str
    channel: str
    route: str
    idempotency_key: str
    attempts: int  # this one included
    created_at: int
    alert: AlertRow
    site: str | None
    device_type: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at a delivery, as shown on the alert."""

    id: int
    alert_id: int | None
    channel: str
    event: str
    idempotency_key: str
    at: int
    outcome: Outcome
    detail: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "channel": self.channel,
            "event": self.event,
            "idempotency_key": self.idempotency_key,
            "at": self.at,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """A channel or route as stored, with where it came from."""

    name: str
    spec: dict[str, Any]
    source: Source


class NotifyStore(Protocol):
    # -- configuration ----------------------------------------------------------------------
    async def load_config(self) -> NotificationConfig: ...

    async def seed_from_file(self, config: NotificationConfig) -> None:
        """Make the file's entries the 'file' entries (replacing the previous ones)."""
        ...

    async def channel_entries(self) -> list[ConfigEntry]: ...

    async def route_entries(self) -> list[ConfigEntry]: ...

    async def put_channel(self, channel: Channel) -> bool:
        """Create or replace an API channel; True if created. ConfigError if file-defined."""
        ...

    async def delete_channel(self, name: str) -> bool:
        """ConfigError if file-defined or still used by a route; False if none."""
        ...

    async def put_route(self, route: Route) -> bool: ...

    async def delete_route(self, name: str) -> bool: ...

    # -- delivery ---------------------------------------------------------------------------
    async def route_outbox(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        """Turn up to ``limit`` outbox events into deliveries, in one transaction; the count."""
        ...

    async def advance_schedules(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        """Make the repeats and escalations due; the deliveries made."""
        ...

    async def claim_due(
        self, now_ms: int, lease_ms: int, limit: int, *, skip_channels: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        """Lease due deliveries no other dispatcher holds (FOR UPDATE SKIP LOCKED), none of
        ``skip_channels`` (those this dispatcher is still sending on)."""
        ...

    async def record(
        self,
        deliveries: list[ClaimedDelivery],
        outcome: Outcome,
        detail: str | None,
        *,
        now_ms: int,
        retry_at_ms: int | None = None,
    ) -> None:
        """Record the attempt; a failure with ``retry_at_ms`` stays pending until then."""
        ...

    async def record_test(
        self, channel: str, key: str, outcome: Outcome, detail: str | None
    ) -> None: ...

    async def attempts_for_alert(self, alert_id: int) -> list[Attempt]: ...
