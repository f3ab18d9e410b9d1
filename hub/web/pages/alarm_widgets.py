"""The dashboard's alarm pieces shared by pages (docs/alarms.md): the shelf badge and the shelve
dialog of the alerts page, its bulk selection bar, and the banner of active maintenance windows
on the overview and device pages.

Every action checks the user's role again on the server at the moment of the click, against
the user as the database has them then (`session.current_principal`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from zoneinfo import ZoneInfo

from nicegui import ui

from hub.alarms.service import ShelfRequest
from hub.alarms.shelving import MAX_REASON_CHARS
from hub.alarms.windows import MaintenanceWindow
from hub.web.container import WebServices
from hub.web.model import AlertFilter, AlertRow, Principal, can_acknowledge
from hub.web.pages import session
from hub.web.services import MAX_COMMENT_CHARS
from hub.web.views.times import format_time

__all__ = ["BulkBar", "ShelfDialog", "shelf_badge", "window_banner"]

log = logging.getLogger(__name__)

Done = Callable[[], Awaitable[None]]
DEFAULT_SHELVE_HOURS = 2.0


async def operator(services: WebServices) -> Principal | None:
    """The user now, if they may shelve or acknowledge; else told why, and None."""
    principal = await session.current_principal(services.auth)
    if principal is None:
        ui.navigate.to("/login?redirect_to=/alerts")
        return None
    if not can_acknowledge(principal.role):
        log.warning("alarm_action_refused", extra={"user": principal.name, "role": principal.role})
        ui.notify("Viewers cannot shelve or acknowledge alerts.", type="negative")
        return None
    return principal


def shelf_badge(a: AlertRow, tz: ZoneInfo, now_ms: int) -> None:
    """A shelved alert's badge and who shelved it, why, until when; nothing if not shelved."""
    if not a.shelved(now_ms):
        return
    ui.badge("shelved", color="grey-8").props("outline").mark("shelved-badge").props(
        "data-testid=shelved-badge"
    ).tooltip(_shelf_text(a, tz))


def shelf_line(a: AlertRow, tz: ZoneInfo, now_ms: int) -> None:
    if a.shelved(now_ms):
        ui.label(_shelf_text(a, tz)).classes("text-xs break-words").mark("shelf-info").props(
            "data-testid=shelf-info"
        )


def _shelf_text(a: AlertRow, tz: ZoneInfo) -> str:
    until = format_time(a.shelved_until, tz)
    return f"shelved by {a.shelved_by or '?'} until {until}: {a.shelve_reason or ''}"


class ShelfDialog:
    """One per page, outside the list (a live refresh re-renders the rows): how long and why,
    for one alert or for the bulk selection."""

    def __init__(self, services: WebServices, on_done: Done) -> None:
        self._services = services
        self._on_done = on_done
        self._target: Callable[[Principal, ShelfRequest], Awaitable[str]] | None = None
        max_hours = services.settings.shelve_max_hours
        with ui.dialog() as self.dialog, ui.card().classes("w-[28rem] max-w-[95vw]"):
            self.title = ui.label("Shelve alert").classes("text-lg font-medium")
            ui.label(
                "A shelved alert still changes state but notifies nobody until the time is up."
            ).classes("text-sm")
            self.hours = (
                ui.number("Hours", value=DEFAULT_SHELVE_HOURS, min=0.25, max=max_hours, step=0.5)
                .props("dense")
                .classes("w-40")
                .mark("shelve-hours")
                .props("data-testid=shelve-hours")
            )
            ui.label(f"at most {max_hours:g} hours").classes("text-xs opacity-70")
            self.reason = (
                ui.textarea("Reason (required)")
                .props(f"maxlength={MAX_REASON_CHARS} counter autogrow")
                .classes("w-full")
                .mark("shelve-reason")
                .props("data-testid=shelve-reason")
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Shelve", on_click=self._confirm).props("color=primary").mark(
                    "shelve-confirm"
                ).props("data-testid=shelve-confirm")

    def open(self, title: str, target: Callable[[Principal, ShelfRequest], Awaitable[str]]) -> None:
        self._target = target
        self.title.text = title
        self.reason.value = ""
        self.hours.value = DEFAULT_SHELVE_HOURS
        self.dialog.open()

    async def shelve_one(self, a: AlertRow) -> None:
        if await operator(self._services) is None:
            return
        services = self._services

        async def one(principal: Principal, ask: ShelfRequest) -> str:
            row = await services.alarms.shelve(
                a.id, principal, ask, client=session.client_address()
            )
            return "That alert no longer exists." if row is None else f"Shelved alert {a.id}."

        self.open(f"Shelve: {a.device_id or a.gateway_id or ''} {a.rule}", one)

    async def _confirm(self) -> None:
        principal = await operator(self._services)
        if principal is None or self._target is None:
            return
        hours = self.hours.value
        ask = ShelfRequest(self.reason.value, float(hours) if hours is not None else None)
        try:
            message = await self._target(principal, ask)
        except (PermissionError, ValueError) as exc:
            ui.notify(str(exc), type="negative")  # the dialog stays open to correct it
            return
        self.dialog.close()
        ui.notify(message, type="positive")
        await self._on_done()


async def unshelve(services: WebServices, a: AlertRow, on_done: Done) -> None:
    principal = await operator(services)
    if principal is None:
        return
    row = await services.alarms.unshelve(a.id, principal, client=session.client_address())
    ui.notify("That alert no longer exists." if row is None else f"Unshelved alert {a.id}.")
    await on_done()


class BulkBar:
    """Select alerts (each, or every one the filter matches) and acknowledge or shelve them at
    once with one comment."""

    def __init__(
        self,
        services: WebServices,
        shelf: ShelfDialog,
        current_filter: Callable[[], AlertFilter],
        on_done: Done,
    ) -> None:
        self._services = services
        self._shelf = shelf
        self._filter = current_filter
        self._on_done = on_done
        self.selected: set[int] = set()
        self.total = 0
        with ui.row().classes("w-full items-center gap-3 flex-wrap").mark("bulk-bar"):
            self.all_matching = (
                ui.checkbox("Select all matching", on_change=self._changed)
                .mark("bulk-all")
                .props("data-testid=bulk-all")
            )
            self.count = ui.label("none selected").classes("text-sm opacity-70").mark("bulk-count")
            self.ack_button = (
                ui.button("Acknowledge selected", icon="done_all", on_click=self._open_ack)
                .props("dense no-caps outline")
                .mark("bulk-ack")
                .props("data-testid=bulk-ack")
            )
            self.shelve_button = (
                ui.button("Shelve selected", icon="snooze", on_click=self._open_shelve)
                .props("dense no-caps outline")
                .mark("bulk-shelve")
                .props("data-testid=bulk-shelve")
            )
        self._build_ack_dialog()
        self._changed()

    def _build_ack_dialog(self) -> None:
        with ui.dialog() as self.ack_dialog, ui.card().classes("w-[28rem] max-w-[95vw]"):
            self.ack_title = ui.label("Acknowledge alerts").classes("text-lg font-medium")
            self.ack_comment = (
                ui.textarea("Comment (optional)")
                .props(f"maxlength={MAX_COMMENT_CHARS} counter autogrow")
                .classes("w-full")
                .mark("bulk-ack-comment")
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.ack_dialog.close).props("flat")
                ui.button("Acknowledge", on_click=self._confirm_ack).props("color=primary").mark(
                    "bulk-ack-confirm"
                ).props("data-testid=bulk-ack-confirm")

    def checkbox(self, alert_id: int) -> None:
        """The selection box of one alert's card."""
        box = ui.checkbox(value=alert_id in self.selected).mark(f"select-{alert_id}")
        box.props(f"dense data-testid=select-{alert_id}")
        box.on_value_change(lambda e: self._toggle(alert_id, bool(e.value)))

    def shown(self, alerts: Iterable[AlertRow], total: int) -> None:
        """The list now shown: a selection no longer listed is dropped."""
        listed = {a.id for a in alerts}
        self.selected &= listed
        self.total = total
        self._changed()

    def _toggle(self, alert_id: int, on: bool) -> None:
        (self.selected.add if on else self.selected.discard)(alert_id)
        self._changed()

    def _changed(self) -> None:
        n = self.total if self.all_matching.value else len(self.selected)
        self.count.text = f"{n} selected" if n else "none selected"
        self.ack_button.set_enabled(n > 0)
        self.shelve_button.set_enabled(n > 0)

    def _selection(self) -> tuple[list[int] | None, AlertFilter | None, int]:
        if self.all_matching.value:
            return None, self._filter(), self.total
        return sorted(self.selected), None, len(self.selected)

    async def _open_ack(self) -> None:
        if await operator(self._services) is None:
            return
        self.ack_title.text = f"Acknowledge {self._selection()[2]} alerts"
        self.ack_comment.value = ""
        self.ack_dialog.open()

    async def _confirm_ack(self) -> None:
        principal = await operator(self._services)
        if principal is None:
            return
        ids, where, _ = self._selection()
        try:
            result = await self._services.alarms.bulk(
                "acknowledge",
                principal,
                ids=ids,
                where=where,
                comment=self.ack_comment.value,
                client=session.client_address(),
            )
        except (PermissionError, ValueError) as exc:
            ui.notify(str(exc), type="negative")
            return
        self.ack_dialog.close()
        ui.notify(_summary("Acknowledged", len(result.applied), len(result.skipped)))
        await self._finish()

    async def _open_shelve(self) -> None:
        if await operator(self._services) is None:
            return
        ids, where, n = self._selection()
        services = self._services

        async def many(principal: Principal, ask: ShelfRequest) -> str:
            result = await services.alarms.bulk(
                "shelve",
                principal,
                ids=ids,
                where=where,
                shelf=ask,
                client=session.client_address(),
            )
            return _summary("Shelved", len(result.applied), len(result.skipped))

        self._shelf.open(f"Shelve {n} alerts", many)

    async def _finish(self) -> None:
        self.selected.clear()
        self.all_matching.value = False
        await self._on_done()


def _summary(done: str, applied: int, skipped: int) -> str:
    text = f"{done} {applied} alert{'s' if applied != 1 else ''}"
    return f"{text}; {skipped} left as they were." if skipped else f"{text}."


def window_banner(windows: list[MaintenanceWindow], tz: ZoneInfo, now_ms: int) -> None:
    """A banner naming the maintenance windows active now (nothing if none)."""
    if not windows:
        return
    with (
        ui.card()
        .classes("w-full p-3 bg-blue-1 dark:bg-blue-10 border-l-4 border-blue-600")
        .mark("window-banner")
        .props("data-testid=window-banner")
    ):
        with ui.row().classes("items-center gap-2"):
            ui.icon("construction").classes("text-blue-700")
            ui.label("Maintenance in progress").classes("font-medium")
            ui.link("maintenance windows", "/maintenance").classes("text-sm")
        for w in windows:
            until = w.active_until(now_ms)
            what = (
                "no new alerts, no notifications"
                if w.spec.suppress == "alerts"
                else ("no notifications")
            )
            text = f"{w.name}: until {format_time(until, tz)} ({what})"
            ui.label(text).classes("text-sm break-words").mark("window-active").props(
                "data-testid=window-active"
            )
