"""`NotificationService`: who may read and change notification channels and routes, the audit
of each change, and "send test message"; the API (`hub.web.api.notifications`) and the page
(`hub.web.pages.notifications`) both go through it, so both check and audit alike."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hub.notify.config import ConfigError, masked, parse_channel, parse_route, unmask
from hub.notify.content import notice_for
from hub.notify.senders import ChannelSender
from hub.notify.store import Attempt, ConfigEntry, NotifyStore, Outcome
from hub.storage.audit_model import Action, Actor, AuditEvent
from hub.storage.model import AlertRow
from hub.storage.web_ports import AuditTrail
from hub.web.model import Principal, can_acknowledge, can_administer

__all__ = ["Conflict", "Missing", "NotificationService", "TestResult", "Unavailable"]

log = logging.getLogger("hub.web.notifications")


class Missing(LookupError):
    """No such channel or route."""


class Conflict(Exception):
    """Defined in the notifications file, already there, or still in use."""


class Unavailable(RuntimeError):
    """Notifications need the PostgreSQL storage."""


@dataclass(frozen=True, slots=True)
class TestResult:
    channel: str
    delivered: bool
    detail: str | None
    idempotency_key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "delivered": self.delivered,
            "detail": self.detail,
            "idempotency_key": self.idempotency_key,
        }


def entry_json(entry: ConfigEntry, *, channel: bool) -> dict[str, Any]:
    """A stored entry as shown: a channel's inline secrets masked."""
    spec = entry.spec
    if channel:
        try:
            spec = masked(parse_channel(spec))
        except ConfigError:
            spec = {"name": entry.name, "type": spec.get("type")}  # never echo unparsed secrets
    return {"name": entry.name, "source": entry.source, "spec": spec}


def _require_reader(by: Principal) -> None:
    if not can_acknowledge(by.role):
        raise PermissionError(
            f"role {by.role!r} may not read notification settings; operator or admin"
        )


def _require_admin(by: Principal) -> None:
    if not can_administer(by.role):
        raise PermissionError(f"role {by.role!r} may not change notification settings; admin")


class NotificationService:
    def __init__(
        self, store: NotifyStore | None, audit: AuditTrail, public_url: str | None
    ) -> None:
        self._store = store
        self._audit = audit
        self._public_url = public_url

    @property
    def available(self) -> bool:
        return self._store is not None

    def _s(self) -> NotifyStore:
        if self._store is None:
            raise Unavailable("notifications need the PostgreSQL storage")
        return self._store

    async def _record(
        self,
        by: Principal,
        client: str | None,
        action: Action,
        target: str,
        details: dict[str, Any] | None = None,
        *,
        success: bool = True,
    ) -> None:
        await self._audit.record(
            AuditEvent(
                Actor(by.name, client),
                action,
                outcome="success" if success else "failure",
                target=target,
                details=details or {},
            )
        )

    # -- reading ------------------------------------------------------------------------------

    async def channels(self, by: Principal) -> list[dict[str, Any]]:
        _require_reader(by)
        return [entry_json(e, channel=True) for e in await self._s().channel_entries()]

    async def routes(self, by: Principal) -> list[dict[str, Any]]:
        _require_reader(by)
        return [entry_json(e, channel=False) for e in await self._s().route_entries()]

    async def attempts(self, alert_id: int) -> list[Attempt]:
        return await self._s().attempts_for_alert(alert_id)

    # -- changing -----------------------------------------------------------------------------

    async def save_channel(
        self, by: Principal, body: dict[str, Any], client: str | None, *, create_only: bool
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace; (the channel as shown, created). ConfigError for bad input
        (naming the field), Conflict for a file entry or (``create_only``) an existing name."""
        _require_admin(by)
        store = self._s()
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("name: required")
        old = next((e for e in await store.channel_entries() if e.name == name), None)
        if old is not None and create_only:
            raise Conflict(f"name: channel {name!r} exists; PUT to change it")
        previous = None
        if old is not None:
            try:
                previous = parse_channel(old.spec)
            except ConfigError:
                previous = None
        channel = parse_channel(unmask(body, previous))
        try:
            created = await store.put_channel(channel)
        except ConfigError as exc:
            raise Conflict(str(exc)) from exc
        action: Action = "notification.channel.create" if created else "notification.channel.update"
        await self._record(by, client, action, name, {"type": channel.type})
        log.info("notification_channel_saved", extra={"channel": name, "by": by.name})
        return {"name": name, "source": "api", "spec": masked(channel)}, created

    async def delete_channel(self, by: Principal, name: str, client: str | None) -> None:
        _require_admin(by)
        try:
            deleted = await self._s().delete_channel(name)
        except ConfigError as exc:
            raise Conflict(str(exc)) from exc
        if not deleted:
            raise Missing(f"no notification channel {name!r}")
        await self._record(by, client, "notification.channel.delete", name)
        log.info("notification_channel_deleted", extra={"channel": name, "by": by.name})

    async def save_route(
        self, by: Principal, body: dict[str, Any], client: str | None, *, create_only: bool
    ) -> tuple[dict[str, Any], bool]:
        _require_admin(by)
        store = self._s()
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("name: required")
        if create_only and any(e.name == name for e in await store.route_entries()):
            raise Conflict(f"name: route {name!r} exists; PUT to change it")
        route = parse_route(body)
        try:
            created = await store.put_route(route)
        except ConfigError as exc:
            if "HUB_NOTIFICATIONS_FILE" in str(exc):
                raise Conflict(str(exc)) from exc
            raise
        action: Action = "notification.route.create" if created else "notification.route.update"
        await self._record(by, client, action, name, {"channels": ",".join(route.channels)})
        log.info("notification_route_saved", extra={"route": name, "by": by.name})
        return {"name": name, "source": "api", "spec": route.model_dump(mode="json")}, created

    async def delete_route(self, by: Principal, name: str, client: str | None) -> None:
        _require_admin(by)
        try:
            deleted = await self._s().delete_route(name)
        except ConfigError as exc:
            raise Conflict(str(exc)) from exc
        if not deleted:
            raise Missing(f"no notification route {name!r}")
        await self._record(by, client, "notification.route.delete", name)
        log.info("notification_route_deleted", extra={"route": name, "by": by.name})

    async def send_test(self, by: Principal, name: str, client: str | None) -> TestResult:
        """A test message on channel ``name``, now, once; recorded and audited."""
        _require_admin(by)
        store = self._s()
        channel = (await store.load_config()).channel(name)
        if channel is None:
            raise Missing(f"no notification channel {name!r}")
        now = int(time.time() * 1000)
        key = f"test-{uuid.uuid4().hex}"
        sample = AlertRow(
            id=0,
            device_id="test-device",
            gateway_id="test-gateway",
            rule="notification_test",
            severity="warning",
            state="active",
            acknowledged=False,
            ack_by=None,
            ack_at=None,
            ack_comment=None,
            metric=None,
            value=None,
            message=f"test message from the IoT hub, sent by {by.name}",
            raised_at=now,
            updated_at=now,
            cleared_at=None,
            cleared_by=None,
            occurrences=1,
        )
        notice = notice_for(
            sample,
            event="test",
            idempotency_key=key,
            site="test-site",
            device_type=None,
            public_url=self._public_url,
        )
        sender = ChannelSender(public_url=self._public_url)
        try:
            result = await sender.send(channel, [notice], route=None)
        finally:
            await sender.close()
        outcome: Outcome = "delivered" if result.delivered else "failed"
        await store.record_test(name, key, outcome, result.detail)
        await self._record(
            by,
            client,
            "notification.channel.test",
            name,
            {"delivered": result.delivered},
            success=result.delivered,
        )
        log.info(
            "notification_test",
            extra={"channel": name, "outcome": outcome, "detail": result.detail, "by": by.name},
        )
        return TestResult(name, result.delivered, result.detail, key)
