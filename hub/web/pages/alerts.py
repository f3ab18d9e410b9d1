"""`/alerts`: filter by state, severity and device; acknowledge (with an optional comment),
clear, shelve and unshelve; select many (or all matching) to acknowledge or shelve at once
(`hub.web.pages.alarm_widgets`); live. A critical alert raised while the page is open stands
out (a pulsing red edge and a NEW badge) until it is acknowledged.

Acknowledging and clearing need the operator or admin role. A viewer's buttons are disabled, and
the handlers check the role again on the server, at the moment of the click, against the user as
the database has them then (`session.current_principal`), so a forged click changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.web.container import WebServices
from hub.web.model import (
    ALERT_STATUSES,
    SEVERITIES,
    AlertFilter,
    AlertRow,
    AlertStatus,
    Principal,
    Severity,
    can_acknowledge,
)
from hub.web.pages import session
from hub.web.pages.alarm_widgets import BulkBar, ShelfDialog, shelf_badge, shelf_line, unshelve
from hub.web.pages.alert_notifications import AttemptsDialog
from hub.web.pages.layout import PageFrame, list_pager, page_frame, show_list_page
from hub.web.services import MAX_COMMENT_CHARS
from hub.web.views.alerts import alert_facts
from hub.web.views.links import device_href
from hub.web.views.pacing import RefreshPacing
from hub.web.views.times import format_time, now_ms

__all__ = ["AlertsPage", "register"]

log = logging.getLogger(__name__)

PAGE_SIZE: Final = 100
REFRESH_AFTER_EVENT_S: Final = 0.5
REFRESH_S: Final = 30.0
ALL: Final = "all"
VIEWER_TIP: Final = "Viewers cannot acknowledge or clear alerts"
Action = Literal["acknowledge", "clear"]


def register(services: WebServices) -> None:
    @ui.page("/alerts", title="Alerts · IoT Hub")
    async def alerts_page(
        request: Request, status: str = "active", severity: str = "", device_id: str = ""
    ) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "alerts")
        page = AlertsPage(
            frame,
            AlertFilter(
                status=_status(status),
                severity=_severity(severity),
                device_id=device_id.strip() or None,
                limit=PAGE_SIZE,
            ),
        )
        await page.build()
        return None


def _status(value: str) -> AlertStatus:
    for status in ALERT_STATUSES:
        if status == value:
            return status
    return "active"


def _severity(value: str | None) -> Severity | None:
    for severity in SEVERITIES:
        if severity == value:
            return severity
    return None


class AlertsPage:
    def __init__(self, frame: PageFrame, alert_filter: AlertFilter) -> None:
        self.frame = frame
        self.filter = alert_filter
        self.alerts: list[AlertRow] = []
        self.total = 0
        self.seen: set[int] = set()  # ids on the page before anything arrived live
        self.new_critical: set[int] = set()
        self._pacing = RefreshPacing(every_s=REFRESH_S, soon_s=REFRESH_AFTER_EVENT_S)
        self._pending_ack: int | None = None
        self._pending_clear: int | None = None
        self._highlighted: frozenset[int] = frozenset()
        self._shelved: frozenset[int] = frozenset()
        self._rendered = False
        self.bulk: BulkBar | None = None

    async def build(self) -> None:
        f = self.filter
        with self.frame.content:
            with ui.row().classes("w-full items-end gap-3 flex-wrap").mark("alert-filters"):
                self.status_toggle = (
                    ui.toggle(list(ALERT_STATUSES), value=f.status, on_change=self._on_filter)
                    .props("no-caps dense")
                    .mark("status-filter")
                )
                self.severity_select = (
                    ui.select(
                        {ALL: "all severities", **{s: s for s in SEVERITIES}},
                        value=f.severity or ALL,
                        label="Severity",
                        on_change=self._on_filter,
                    )
                    .props("dense options-dense")
                    .classes("w-40")
                    .mark("severity-filter")
                )
                self.device_input = (
                    ui.input("Device id", value=f.device_id or "")
                    .props("dense clearable debounce=400")
                    .classes("w-56")
                    .mark("device-filter")
                )
                self.device_input.on_value_change(self._on_filter)
                ui.space()
                self.count_label = ui.label().classes("text-sm opacity-70").mark("alert-count")
            if not self.frame.can_acknowledge:
                ui.label(f"You are signed in as a viewer: {VIEWER_TIP.lower()}.").classes(
                    "text-sm opacity-70"
                ).mark("viewer-note")
            self.shelf = ShelfDialog(self.frame.services, self.refresh)
            if self.frame.can_acknowledge:
                self.bulk = BulkBar(
                    self.frame.services, self.shelf, lambda: self.filter, self.refresh
                )
            self.list_box = (
                ui.column()
                .classes("w-full gap-2")
                .mark("alert-list")
                .props("data-testid=alert-list")
            )
            self.pager = list_pager(self._on_page)
            self._build_dialogs()
            self.attempts = AttemptsDialog(self.frame.services, self.frame.tz)
        await self.refresh()
        self.seen = {a.id for a in self.alerts}
        self.frame.pump.on_alerts(self._on_alerts)
        self.frame.pump.on_tick(self._on_tick)

    def _build_dialogs(self) -> None:
        # One dialog of each kind for the page, outside the list: a live refresh re-renders
        # the rows, and must not close a dialog someone is typing into.
        with ui.dialog() as self.ack_dialog, ui.card().classes("w-[28rem] max-w-[95vw]"):
            self.ack_title = ui.label("Acknowledge alert").classes("text-lg font-medium")
            self.ack_comment = (
                ui.textarea(
                    "Comment (optional)",
                    validation={
                        f"at most {MAX_COMMENT_CHARS} characters": lambda v: (
                            len(v or "") <= MAX_COMMENT_CHARS
                        )
                    },
                )
                .props(f"maxlength={MAX_COMMENT_CHARS} counter autogrow")
                .classes("w-full")
                .mark("ack-comment")
                .props("data-testid=ack-comment")
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.ack_dialog.close).props("flat")
                ui.button("Acknowledge", on_click=self._confirm_ack).props("color=primary").mark(
                    "ack-confirm"
                ).props("data-testid=ack-confirm")
        with ui.dialog() as self.clear_dialog, ui.card().classes("w-[28rem] max-w-[95vw]"):
            self.clear_title = ui.label("Clear alert").classes("text-lg font-medium")
            ui.label(
                "Clearing closes the alert now. If its rule still fires, a new alert is raised."
            ).classes("text-sm")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.clear_dialog.close).props("flat")
                ui.button("Clear", on_click=self._confirm_clear).props("color=negative").mark(
                    "clear-confirm"
                ).props("data-testid=clear-confirm")

    # -- reading ----------------------------------------------------------------------------------

    async def refresh(self) -> None:
        page = await self.frame.services.reads.alerts(self.filter)
        highlighted = frozenset(self.new_critical)
        now = now_ms()
        shelved = frozenset(a.id for a in page.items if a.shelved(now))  # a shelf ran out
        changed = (page.items, highlighted, shelved) != (
            self.alerts,
            self._highlighted,
            self._shelved,
        )
        self.alerts, self.total, self._highlighted = page.items, page.total, highlighted
        self._shelved = shelved
        self._pacing.refreshed()
        if changed or not self._rendered:
            self._render()  # only when something shown changed: no flicker under a pointer
            self._rendered = True
        show_list_page(page, "alert", self.count_label, self.pager)
        if self.bulk is not None:
            self.bulk.shown(page.items, page.total)

    def _render(self) -> None:
        self.list_box.clear()
        with self.list_box:
            if not self.alerts:
                ui.label("No alerts match.").classes("p-4 opacity-70").mark("no-alerts")
            for alert in self.alerts:
                self._render_alert(alert)

    def _render_alert(self, a: AlertRow) -> None:
        tz = self.frame.tz
        now = now_ms()
        critical = a.severity == "critical"
        card = (
            ui.card()
            .classes("w-full p-3 gap-1")
            .mark(f"alert-{a.id}")
            .props(f"data-testid=alert-{a.id}")
        )
        if a.id in self.new_critical and not a.acknowledged:
            card.classes("iot-new-critical")
        elif critical and a.state == "active":
            card.classes("border-l-4 border-red-700")
        elif a.state == "active":
            card.classes("border-l-4 border-amber-500")
        with card:
            with ui.row().classes("items-center gap-2 w-full flex-wrap"):
                if self.bulk is not None:
                    self.bulk.checkbox(a.id)
                ui.badge(a.severity, color="negative" if critical else "warning").mark("severity")
                if a.id in self.new_critical and not a.acknowledged:
                    ui.badge("NEW", color="negative").props("outline").mark("new-badge").props(
                        "data-testid=new-badge"
                    )
                ui.badge(a.state, color="grey-7" if a.state == "cleared" else "primary").mark(
                    "alert-state"
                ).props("data-testid=alert-state")
                if a.acknowledged:
                    ui.badge("acknowledged", color="positive").props("outline").mark("acked").props(
                        "data-testid=acked"
                    )
                shelf_badge(a, tz, now)
                if a.device_id is not None:
                    ui.link(a.device_id, device_href(a.device_id)).classes(
                        "font-medium break-all"
                    ).mark("alert-device")
                elif a.gateway_id is not None:
                    ui.label(f"gateway {a.gateway_id}").classes("font-medium break-all")
                ui.label(a.rule).classes("text-xs opacity-70 break-all")
                ui.space()
                self._action_buttons(a)
            ui.label(a.message).classes("break-words").mark("alert-message").props(
                "data-testid=alert-message"
            )
            ui.label(alert_facts(a, tz, now)).classes("text-xs opacity-70 iot-mono")
            shelf_line(a, tz, now)
            if a.acknowledged:
                ack = f"acknowledged by {a.ack_by or '?'} at {format_time(a.ack_at, tz)}"
                ui.label(ack).classes("text-xs").mark("ack-info")
                if a.ack_comment:
                    ui.label(a.ack_comment).classes("text-xs italic break-words").mark(
                        "ack-comment-text"
                    )

    def _action_buttons(self, a: AlertRow) -> None:
        self.attempts.button(a.id)
        allowed = self.frame.can_acknowledge
        ack = (
            ui.button("Acknowledge", icon="done", on_click=lambda: self._open_ack(a))
            .props("dense no-caps outline")
            .mark(f"ack-{a.id}")
            .props(f"data-testid=ack-{a.id}")
        )
        clear = (
            ui.button("Clear", icon="close", on_click=lambda: self._open_clear(a))
            .props("dense no-caps outline color=negative")
            .mark(f"clear-{a.id}")
            .props(f"data-testid=clear-{a.id}")
        )
        if a.shelved(now_ms()):
            shelve = ui.button(
                "Unshelve",
                icon="notifications_active",
                on_click=lambda: unshelve(self.frame.services, a, self.refresh),
            ).mark(f"unshelve-{a.id}")
            shelve.props(f"dense no-caps outline data-testid=unshelve-{a.id}")
        else:
            shelve = ui.button(
                "Shelve", icon="snooze", on_click=lambda: self.shelf.shelve_one(a)
            ).mark(f"shelve-{a.id}")
            shelve.props(f"dense no-caps outline data-testid=shelve-{a.id}")
        shelve.set_enabled(allowed)
        ack.set_enabled(allowed and not a.acknowledged)
        clear.set_enabled(allowed and a.state == "active")
        if not allowed:
            ack.tooltip(VIEWER_TIP)
            clear.tooltip(VIEWER_TIP)

    # -- acknowledging and clearing ---------------------------------------------------------------

    async def _open_ack(self, a: AlertRow) -> None:
        if await self._allowed("acknowledge", a.id) is None:
            return
        self._pending_ack = a.id
        self.ack_title.text = f"Acknowledge: {a.device_id or a.gateway_id or ''} {a.rule}"
        self.ack_comment.value = ""
        self.ack_dialog.open()

    async def _open_clear(self, a: AlertRow) -> None:
        if await self._allowed("clear", a.id) is None:
            return
        self._pending_clear = a.id
        self.clear_title.text = f"Clear: {a.device_id or a.gateway_id or ''} {a.rule}"
        self.clear_dialog.open()

    async def _confirm_ack(self) -> None:
        alert_id, self._pending_ack = self._pending_ack, None
        self.ack_dialog.close()
        if alert_id is not None:
            await self.acknowledge(alert_id, self.ack_comment.value)

    async def _confirm_clear(self) -> None:
        alert_id, self._pending_clear = self._pending_clear, None
        self.clear_dialog.close()
        if alert_id is not None:
            await self.clear(alert_id)

    async def _allowed(self, action: Action, alert_id: int) -> Principal | None:
        """The role check at the moment of the action, against the user as they are now: the
        principal if they may, else None (and they are told why)."""
        principal = await session.current_principal(self.frame.services.auth)
        if principal is None:
            ui.navigate.to("/login?redirect_to=/alerts")
            return None
        if not can_acknowledge(principal.role):
            log.warning(
                "alert_action_refused",
                extra={
                    "action": action,
                    "alert_id": alert_id,
                    "user": principal.name,
                    "role": principal.role,
                },
            )
            ui.notify(f"{VIEWER_TIP}.", type="negative")
            return None
        return principal

    async def acknowledge(self, alert_id: int, comment: str | None) -> AlertRow | None:
        principal = await self._allowed("acknowledge", alert_id)
        if principal is None:
            return None
        try:
            row = await self.frame.services.alerts.acknowledge(
                alert_id, principal, comment, client=session.client_address()
            )
        except (PermissionError, ValueError) as exc:
            ui.notify(str(exc), type="negative")
            return None
        if row is None:
            ui.notify("That alert no longer exists.", type="warning")
        else:
            self.new_critical.discard(alert_id)
            ui.notify(f"Acknowledged alert {alert_id}.", type="positive")
        await self.refresh()
        return row

    async def clear(self, alert_id: int) -> AlertRow | None:
        principal = await self._allowed("clear", alert_id)
        if principal is None:
            return None
        try:
            row = await self.frame.services.alerts.clear(
                alert_id, principal, client=session.client_address()
            )
        except PermissionError as exc:
            ui.notify(str(exc), type="negative")
            return None
        if row is None:
            ui.notify("That alert no longer exists.", type="warning")
        else:
            ui.notify(f"Cleared alert {alert_id}.", type="positive")
        await self.refresh()
        return row

    # -- filters, paging, live --------------------------------------------------------------------

    async def _on_filter(self) -> None:
        severity = self.severity_select.value
        self.filter = AlertFilter(
            status=_status(str(self.status_toggle.value)),
            severity=_severity(None if severity == ALL else str(severity)),
            device_id=(self.device_input.value or "").strip() or None,
            limit=PAGE_SIZE,
        )
        self.pager.value = 1
        query: dict[str, str] = {"status": self.filter.status}
        if self.filter.severity:
            query["severity"] = self.filter.severity
        if self.filter.device_id:
            query["device_id"] = self.filter.device_id
        ui.navigate.history.replace(f"/alerts?{urlencode(query)}")
        await self.refresh()

    async def _on_page(self) -> None:
        offset = (int(self.pager.value or 1) - 1) * PAGE_SIZE
        if offset != self.filter.offset:
            f = self.filter
            self.filter = AlertFilter(f.status, f.severity, f.device_id, PAGE_SIZE, offset)
            await self.refresh()

    def _on_alerts(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            alert_id = event.get("id")
            if (
                isinstance(alert_id, int)
                and event.get("event") == "raised"
                and event.get("severity") == "critical"
                and alert_id not in self.seen
            ):
                self.new_critical.add(alert_id)
        self._pacing.want()

    async def _on_tick(self) -> None:
        if self._pacing.refresh_due():
            await self.refresh()
