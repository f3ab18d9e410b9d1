"""`/maintenance`: the maintenance windows (docs/alarms.md). Everyone signed in sees them, with
which are active now; admins create, edit and delete them in a form checked by the same model
as the API (`hub.alarms.windows.parse_spec`). Each change is audited by `AlarmService`."""

from __future__ import annotations

import logging
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.alarms.windows import (
    SUPPRESS,
    WEEKDAY_NAMES,
    MaintenanceWindow,
    Once,
    Schedule,
    Scope,
    Weekly,
    WindowSpec,
    parse_spec,
)
from hub.web.container import WebServices
from hub.web.model import Principal, can_administer
from hub.web.pages import session
from hub.web.pages.layout import PageFrame, page_frame
from hub.web.views.times import format_time, input_value, now_ms, parse_local

__all__ = ["MaintenancePage", "describe_schedule", "register"]

log = logging.getLogger(__name__)

REFRESH_S: Final = 30.0
ADMIN_TIP: Final = "Only admins create, edit and delete maintenance windows"
_SCOPE_FIELDS: Final = (
    ("sites", "Sites"),
    ("gateways", "Gateways"),
    ("device_types", "Device types"),
    ("devices", "Devices"),
)


def register(services: WebServices) -> None:
    @ui.page("/maintenance", title="Maintenance windows · IoT Hub")
    async def maintenance_page(request: Request) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "maintenance")
        page = MaintenancePage(frame)
        await page.build()
        return None


def describe_schedule(schedule: Schedule, tz: ZoneInfo) -> str:
    if isinstance(schedule, Once):
        return f"once, {format_time(schedule.start, tz)} to {format_time(schedule.end, tz)}"
    days = ", ".join(WEEKDAY_NAMES[d] for d in schedule.weekdays)
    hours, minutes = divmod(schedule.duration_minutes, 60)
    length = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if not hours:
        length = f"{minutes} min"
    return f"weekly, {days} at {schedule.start} ({schedule.timezone}) for {length}"


def describe_scope(scope: Scope) -> str:
    parts = [
        f"{label.lower()}: {', '.join(getattr(scope, name))}"
        for name, label in _SCOPE_FIELDS
        if getattr(scope, name)
    ]
    return "; ".join(parts)


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class MaintenancePage:
    def __init__(self, frame: PageFrame) -> None:
        self.frame = frame
        self.services = frame.services
        self.admin = can_administer(frame.principal.role)
        self.editing: int | None = None  # the window the form edits; None: a new one

    async def build(self) -> None:
        with self.frame.content:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Maintenance windows").classes("text-lg font-medium")
                ui.space()
                new = ui.button("New window", icon="add", on_click=self.open_new).mark("window-new")
                new.props("no-caps data-testid=window-new")
                new.set_enabled(self.admin)
                if not self.admin:
                    new.tooltip(ADMIN_TIP)
            ui.label(
                "While a window is active, the devices it covers notify nobody; a window that "
                "suppresses alerts also raises no new alert for them."
            ).classes("text-sm opacity-70")
            self.list_box = ui.column().classes("w-full gap-2").mark("window-list")
            self.form = WindowForm(self)
        await self.refresh()
        ui.timer(REFRESH_S, self.refresh)  # which windows are active changes with the clock

    async def refresh(self) -> None:
        windows = await self.services.alarms.windows()
        now = now_ms()
        self.list_box.clear()
        with self.list_box:
            if not windows:
                ui.label("No maintenance windows.").classes("p-4 opacity-70").mark(
                    "no-windows"
                ).props("data-testid=no-windows")
            for w in windows:
                self._render(w, now)

    def _render(self, w: MaintenanceWindow, now: int) -> None:
        tz = self.frame.tz
        until = w.active_until(now)
        card = ui.card().classes("w-full p-3 gap-1").mark(f"window-{w.id}")
        card.props(f"data-testid=window-{w.id}")
        if until is not None:
            card.classes("border-l-4 border-blue-600")
        with card:
            with ui.row().classes("items-center gap-2 w-full flex-wrap"):
                ui.label(w.name).classes("font-medium break-all").mark("window-name")
                if until is not None:
                    ui.badge(f"active until {format_time(until, tz)}", color="primary").mark(
                        "window-active-badge"
                    ).props("data-testid=window-active-badge")
                ui.badge(f"suppresses {w.spec.suppress}", color="grey-7").props("outline")
                ui.space()
                if self.admin:
                    self._buttons(w)
            ui.label(describe_schedule(w.spec.schedule, tz)).classes("text-sm")
            ui.label(describe_scope(w.spec.scope)).classes("text-sm break-words")
            if w.spec.comment:
                ui.label(w.spec.comment).classes("text-xs italic break-words")
            changed = f"changed by {w.updated_by} at {format_time(w.updated_at, tz)}"
            ui.label(changed).classes("text-xs opacity-70")

    def _buttons(self, w: MaintenanceWindow) -> None:
        ui.button("Edit", icon="edit", on_click=lambda: self.form.open(w)).props(
            f"dense no-caps outline data-testid=window-edit-{w.id}"
        ).mark(f"window-edit-{w.id}")
        ui.button("Delete", icon="delete", on_click=lambda: self.delete(w)).props(
            f"dense no-caps outline color=negative data-testid=window-delete-{w.id}"
        ).mark(f"window-delete-{w.id}")

    async def open_new(self) -> None:
        if await self._admin_now() is not None:
            self.form.open(None)

    async def _admin_now(self) -> Principal | None:
        principal = await session.current_principal(self.services.auth)
        if principal is None:
            ui.navigate.to("/login?redirect_to=/maintenance")
            return None
        if not can_administer(principal.role):
            ui.notify(f"{ADMIN_TIP}.", type="negative")
            return None
        return principal

    async def save(self, spec: WindowSpec) -> bool:
        principal = await self._admin_now()
        if principal is None:
            return False
        client = session.client_address()
        try:
            if self.form.window_id is None:
                await self.services.alarms.create_window(spec, principal, client=client)
            else:
                saved = await self.services.alarms.update_window(
                    self.form.window_id, spec, principal, client=client
                )
                if saved is None:
                    ui.notify("That window no longer exists.", type="warning")
        except (PermissionError, ValueError) as exc:
            ui.notify(str(exc), type="negative")
            return False
        ui.notify(f"Saved maintenance window {spec.name!r}.", type="positive")
        await self.refresh()
        return True

    async def delete(self, w: MaintenanceWindow) -> None:
        principal = await self._admin_now()
        if principal is None:
            return
        await self.services.alarms.delete_window(w.id, principal, client=session.client_address())
        ui.notify(f"Deleted maintenance window {w.name!r}.")
        await self.refresh()


class WindowForm:
    """The create/edit dialog: every field, checked whole by `parse_spec` on save."""

    def __init__(self, page: MaintenancePage) -> None:
        self.page = page
        self.window_id: int | None = None
        tz = page.frame.tz
        with ui.dialog() as self.dialog, ui.card().classes("w-[36rem] max-w-[95vw] gap-2"):
            self.title = ui.label("New maintenance window").classes("text-lg font-medium")
            self.name = _field(ui.input("Name"), "window-name-input")
            self.suppress = _field(
                ui.select(list(SUPPRESS), value="notifications", label="Suppresses"),
                "window-suppress",
            )
            self.kind = _field(
                ui.toggle({"once": "once", "weekly": "weekly"}, value="once"), "window-kind"
            )
            with (
                ui.column()
                .classes("w-full gap-1")
                .bind_visibility_from(self.kind, "value", value="once")
            ):
                self.start = _field(ui.input(f"Start ({tz.key})"), "window-start")
                self.end = _field(ui.input(f"End ({tz.key})"), "window-end")
                for box in (self.start, self.end):
                    box.props("type=datetime-local")
            with (
                ui.column()
                .classes("w-full gap-1")
                .bind_visibility_from(self.kind, "value", value="weekly")
            ):
                self.weekdays = _field(
                    ui.select(dict(enumerate(WEEKDAY_NAMES)), multiple=True, label="Weekdays"),
                    "window-weekdays",
                )
                self.at = _field(ui.input("Start time (HH:MM)", value="22:00"), "window-at")
                self.minutes = _field(
                    ui.number("Duration (minutes)", value=60, min=1, precision=0),
                    "window-minutes",
                )
                self.zone = _field(ui.input("Time zone", value=tz.key), "window-zone")
            ui.label("Scope (comma-separated; a device is covered if any of its own is listed)")
            self.scope = {
                name: _field(ui.input(label), f"window-scope-{name}")
                for name, label in _SCOPE_FIELDS
            }
            self.comment = _field(ui.input("Comment (optional)"), "window-comment")
            self.error = ui.label().classes("text-negative text-sm").mark("window-error")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.dialog.close).props("flat")
                ui.button("Save", on_click=self.save).props(
                    "color=primary data-testid=window-save"
                ).mark("window-save")

    def open(self, w: MaintenanceWindow | None) -> None:
        self.window_id = None if w is None else w.id
        self.title.text = "New maintenance window" if w is None else f"Edit {w.name}"
        self.error.text = ""
        self._fill(w)
        self.dialog.open()

    def _fill(self, w: MaintenanceWindow | None) -> None:
        tz = self.page.frame.tz
        now = now_ms()
        spec = w.spec if w is not None else None
        self.name.value = spec.name if spec else ""
        self.suppress.value = spec.suppress if spec else "notifications"
        self.comment.value = (spec.comment or "") if spec else ""
        for name, box in self.scope.items():
            box.value = ", ".join(getattr(spec.scope, name)) if spec else ""
        schedule = spec.schedule if spec else Once(now, now + 3_600_000)
        self.kind.value = "once" if isinstance(schedule, Once) else "weekly"
        if isinstance(schedule, Once):
            self.start.value = input_value(schedule.start, tz)
            self.end.value = input_value(schedule.end, tz)
        if isinstance(schedule, Weekly):
            self.weekdays.value = list(schedule.weekdays)
            self.at.value = schedule.start
            self.minutes.value = schedule.duration_minutes
            self.zone.value = schedule.timezone

    def data(self) -> dict[str, Any]:
        """The form as the API's body; ValueError for a time that is not one."""
        tz = self.page.frame.tz
        if self.kind.value == "once":
            schedule: dict[str, Any] = {
                "kind": "once",
                "start": _local(self.start.value, tz, "schedule.start"),
                "end": _local(self.end.value, tz, "schedule.end"),
            }
        else:
            minutes = self.minutes.value
            schedule = {
                "kind": "weekly",
                "weekdays": sorted(int(d) for d in (self.weekdays.value or [])),
                "start": (self.at.value or "").strip(),
                "duration_minutes": int(minutes) if minutes is not None else None,
                "timezone": (self.zone.value or "").strip(),
            }
        return {
            "name": self.name.value or "",
            "suppress": self.suppress.value,
            "schedule": schedule,
            "scope": {name: _names(box.value) for name, box in self.scope.items()},
            "comment": self.comment.value or None,
        }

    async def save(self) -> None:
        try:
            spec = parse_spec(self.data())
        except ValueError as exc:
            self.error.text = str(exc)  # the dialog stays open to correct it
            return
        if await self.page.save(spec):
            self.dialog.close()


def _field(element: Any, marker: str) -> Any:
    element.classes("w-full").mark(marker).props(f"dense data-testid={marker}")
    return element


def _local(text: str | None, tz: ZoneInfo, field: str) -> int:
    try:
        return parse_local(text or "", tz)
    except ValueError:
        raise ValueError(f"{field} must be a date and time") from None
