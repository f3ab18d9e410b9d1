"""The web layer's alarm actions, shared by the pages and the API: shelving and unshelving an
alert, bulk acknowledge and shelve, and maintenance windows. Each checks who may act and what
was asked (ValueError names the field; nothing is applied unless all of it is valid), writes
through the `AlarmStore`, logs one line, records its audit event and publishes the alert's
live event.

Bulk actions are audited per alert, exactly as the single action is (`alert.acknowledge`,
`alert.shelve`), so an alert's history reads the same however it was acted on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from hub.alarms.ports import AlarmStore
from hub.alarms.shelving import check_reason, shelf_end
from hub.alarms.windows import DeviceRef, MaintenanceWindow, WindowSpec, covering
from hub.storage.alert_events import alert_event, encode_event
from hub.storage.audit_model import Action, Actor, AuditEvent
from hub.storage.web_model import MAX_PAGE, AlertFilter
from hub.storage.web_ports import AlertEvents, AuditTrail, ReadModel
from hub.web.model import AlertRow, Principal, can_acknowledge, can_administer
from hub.web.services import AlertService

__all__ = ["MAX_BULK", "AlarmService", "BulkResult", "ShelfRequest"]

log = logging.getLogger("hub.alarms")

MAX_BULK: Final = MAX_PAGE  # alerts one bulk action may touch
BulkAction = Literal["acknowledge", "shelve"]


@dataclass(frozen=True, slots=True)
class ShelfRequest:
    reason: str | None
    hours: float | None = None
    until: int | None = None  # epoch ms


@dataclass(slots=True)
class BulkResult:
    action: BulkAction
    applied: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # alert id -> why

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "applied": self.applied,
            "skipped": [{"id": i, "reason": why} for i, why in self.skipped.items()],
        }


class AlarmService:
    def __init__(
        self,
        store: AlarmStore,
        *,
        reads: ReadModel,
        alerts: AlertService,
        events: AlertEvents,
        audit: AuditTrail,
        shelve_max_hours: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._reads = reads
        self._alerts = alerts
        self._events = events
        self._audit = audit
        self.shelve_max_hours = shelve_max_hours
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- shelving ------------------------------------------------------------------------------

    def check_shelf(self, ask: ShelfRequest) -> tuple[str, int]:
        """(reason, until ms) or ValueError naming the field."""
        reason = check_reason(ask.reason)
        until = shelf_end(
            self.now_ms(), hours=ask.hours, until=ask.until, max_hours=self.shelve_max_hours
        )
        return reason, until

    async def shelve(
        self, alert_id: int, by: Principal, ask: ShelfRequest, *, client: str | None = None
    ) -> AlertRow | None:
        """Shelve as ``by`` (operator or admin, else PermissionError); None if no such alert."""
        _require_operator(by)
        reason, until = self.check_shelf(ask)
        return await self._shelve(alert_id, by, reason, until, client)

    async def _shelve(
        self, alert_id: int, by: Principal, reason: str, until: int, client: str | None
    ) -> AlertRow | None:
        row = await self.store.shelve_alert(alert_id, by.name, reason, until)
        if row is not None:
            details = {**_alert_details(row), "until": until, "reason": reason}
            log.info("alert_shelved", extra={**_fields(row, by), "until": until})
            await self._record(by, client, "alert.shelve", str(row.id), details)
            await self._publish("shelved", row)
        return row

    async def unshelve(
        self, alert_id: int, by: Principal, *, client: str | None = None
    ) -> AlertRow | None:
        _require_operator(by)
        before = await self.store.get_alert(alert_id)
        if before is None:
            return None
        row = await self.store.unshelve_alert(alert_id)
        if row is not None:
            details = {**_alert_details(row), "was_until": before.shelved_until}
            log.info("alert_unshelved", extra=_fields(row, by))
            await self._record(by, client, "alert.unshelve", str(row.id), details)
            await self._publish("unshelved", row)
        return row

    # -- bulk ------------------------------------------------------------------------------------

    async def bulk(
        self,
        action: BulkAction,
        by: Principal,
        *,
        ids: list[int] | None = None,
        where: AlertFilter | None = None,
        comment: str | None = None,
        shelf: ShelfRequest | None = None,
        client: str | None = None,
    ) -> BulkResult:
        """Acknowledge or shelve the alerts ``ids`` or those ``where`` selects (one of the two),
        with one comment or reason. Everything is checked before anything is applied."""
        _require_operator(by)
        if (ids is None) == (where is None):
            raise ValueError("give exactly one of ids or filter")
        if action == "shelve":
            reason, until = self.check_shelf(shelf or ShelfRequest(comment))
        elif action == "acknowledge":
            comment = self._alerts.check_comment(comment)
        else:
            raise ValueError(f"action must be acknowledge or shelve, got {action!r}")
        result = BulkResult(action)
        rows = await self._select(ids, where, result)
        for row in rows:
            if action == "acknowledge" and row.acknowledged:
                result.skipped[row.id] = "already acknowledged"
                continue
            if action == "shelve":
                done = await self._shelve(row.id, by, reason, until, client)
            else:
                done = await self._alerts.acknowledge(row.id, by, comment, client=client)
            if done is None:  # gone since it was selected
                result.skipped[row.id] = "no such alert"
            else:
                result.applied.append(row.id)
        log.info(
            "alerts_bulk",
            extra={
                "action": action,
                "by": by.name,
                "applied": len(result.applied),
                "skipped": len(result.skipped),
            },
        )
        return result

    async def _select(
        self, ids: list[int] | None, where: AlertFilter | None, result: BulkResult
    ) -> list[AlertRow]:
        if where is not None:
            page = await self._reads.alerts(replace(where, limit=MAX_BULK, offset=0))
            if page.total > MAX_BULK:
                raise ValueError(
                    f"filter matches {page.total} alerts; at most {MAX_BULK} at once: narrow it"
                )
            return page.items
        assert ids is not None
        if not ids or len(ids) > MAX_BULK:
            raise ValueError(f"ids must list 1..{MAX_BULK} alert ids")
        rows = []
        for alert_id in dict.fromkeys(ids):
            row = await self.store.get_alert(alert_id)
            if row is None:
                result.skipped[alert_id] = "no such alert"
            else:
                rows.append(row)
        return rows

    # -- maintenance windows -------------------------------------------------------------------

    async def windows(self) -> list[MaintenanceWindow]:
        return await self.store.windows()

    async def active_windows(
        self, device_id: str | None = None, gateway_id: str | None = None
    ) -> list[MaintenanceWindow]:
        """The windows active now; with a device, those that cover it."""
        now = self.now_ms()
        windows = await self.store.windows()
        if device_id is None and gateway_id is None:
            return [w for w in windows if w.active_until(now) is not None]
        ref = None if device_id is None else await self.store.device_ref(device_id)
        return covering(windows, ref or DeviceRef(device_id, gateway_id), now)

    async def create_window(
        self, spec: WindowSpec, by: Principal, *, client: str | None = None
    ) -> MaintenanceWindow:
        _require_admin(by)
        window = await self.store.create_window(spec, by.name)
        await self._window_changed("window.create", window, by, client)
        return window

    async def update_window(
        self, window_id: int, spec: WindowSpec, by: Principal, *, client: str | None = None
    ) -> MaintenanceWindow | None:
        _require_admin(by)
        window = await self.store.update_window(window_id, spec, by.name)
        if window is not None:
            await self._window_changed("window.update", window, by, client)
        return window

    async def delete_window(
        self, window_id: int, by: Principal, *, client: str | None = None
    ) -> MaintenanceWindow | None:
        _require_admin(by)
        window = await self.store.delete_window(window_id)
        if window is not None:
            await self._window_changed("window.delete", window, by, client)
        return window

    async def _window_changed(
        self, action: Action, window: MaintenanceWindow, by: Principal, client: str | None
    ) -> None:
        log.info(
            action.replace(".", "_"),
            extra={"window_id": window.id, "window": window.name, "by": by.name},
        )
        await self._record(by, client, action, str(window.id), window.spec.to_json())

    # -- shared ----------------------------------------------------------------------------------

    async def _record(
        self, by: Principal, client: str | None, action: Action, target: str, details: Any
    ) -> None:
        await self._audit.record(
            AuditEvent(Actor(by.name, client), action, target=target, details=details)
        )

    async def _publish(self, kind: str, row: AlertRow) -> None:
        await self._events.publish_alert(encode_event(alert_event(kind, row)))


def _require_operator(by: Principal) -> None:
    if not can_acknowledge(by.role):
        raise PermissionError(f"{by.name} ({by.role}) may not shelve or acknowledge alerts")


def _require_admin(by: Principal) -> None:
    if not can_administer(by.role):
        raise PermissionError(f"{by.name} ({by.role}) may not change maintenance windows")


def _fields(row: AlertRow, by: Principal) -> dict[str, object]:
    return {"alert_id": row.id, "device_id": row.device_id, "rule": row.rule, "by": by.name}


def _alert_details(row: AlertRow) -> dict[str, str | int | None]:
    return {"device_id": row.device_id, "gateway_id": row.gateway_id, "rule": row.rule}
