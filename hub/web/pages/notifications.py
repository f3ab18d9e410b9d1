"""`/notifications`: notification channels and routes (operators read, admins change), with a
"Send test message" button per channel. An admin adds or replaces an entry by pasting it as in
the notifications file (YAML), checked by the same model as the file and the API; entries from
`HUB_NOTIFICATIONS_FILE` are read-only here. Every change goes through `NotificationService`
(audited, secrets masked)."""

from __future__ import annotations

from typing import Any, Final

import yaml
from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.notify.config import ConfigError
from hub.web.container import WebServices
from hub.web.model import Principal, can_acknowledge, can_administer
from hub.web.notify_service import Conflict, Missing, NotificationService, Unavailable
from hub.web.pages import session
from hub.web.pages.layout import PageFrame, page_frame

__all__ = ["register"]

CHANNEL_COLUMNS: Final = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "type", "label": "Type", "field": "type", "align": "left"},
    {"name": "target", "label": "Sends to", "field": "target", "align": "left"},
    {"name": "source", "label": "Defined in", "field": "source", "align": "left"},
]
ROUTE_COLUMNS: Final = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "match", "label": "Matches", "field": "match", "align": "left"},
    {"name": "channels", "label": "Channels", "field": "channels", "align": "left"},
    {"name": "pacing", "label": "Pacing", "field": "pacing", "align": "left"},
    {"name": "source", "label": "Defined in", "field": "source", "align": "left"},
]
_SOURCES: Final = {"file": "file (read-only)", "api": "dashboard / API"}
CHANNEL_EXAMPLE: Final = '{name: ops-webhook, type: webhook, url: "https://receiver.example/hook"}'
ROUTE_EXAMPLE: Final = (
    "{name: critical-to-ops, match: {severity: [critical]}, channels: [ops-webhook]}"
)


def _target(spec: dict[str, Any]) -> str:
    if spec.get("type") == "email":
        return f"{', '.join(spec.get('to') or [])} via {spec.get('host')}"
    return str(spec.get("url", ""))


def channel_row(item: dict[str, Any]) -> dict[str, Any]:
    spec = item["spec"]
    kind = spec.get("type", "")
    if kind == "webhook":
        kind = f"webhook ({spec.get('format', 'iot-v1')})"
    return {
        "name": item["name"],
        "type": kind,
        "target": _target(spec),
        "source": _SOURCES.get(item["source"], item["source"]),
    }


def _seconds(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g} h"
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:g} s"


def route_row(item: dict[str, Any]) -> dict[str, Any]:
    spec = item["spec"]
    match = spec.get("match") or {}
    parts = [f"{k} in {', '.join(v)}" for k, v in match.items() if v]
    pacing = [f"group {_seconds(spec.get('group_window_s', 30))}"]
    repeat = spec.get("repeat_interval_s", 14400)
    pacing.append(f"repeat {_seconds(repeat)}" if repeat else "no repeat")
    if spec.get("escalate_after_s"):
        pacing.append(f"escalate every {_seconds(spec['escalate_after_s'])}")
    return {
        "name": item["name"],
        "match": "; ".join(parts) or "every alert",
        "channels": " → ".join(spec.get("channels", []))
        if spec.get("escalate_after_s")
        else ", ".join(spec.get("channels", [])),
        "pacing": ", ".join(pacing),
        "source": _SOURCES.get(item["source"], item["source"]),
    }


def parse_entry(text: str) -> dict[str, Any]:
    """One entry as typed (YAML or JSON); ConfigError if it is not a mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"(entry): not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("(entry): expected a mapping such as the example")
    return data


def _name_of(args: Any) -> str:
    """The row name a slot button emitted (NiceGUI hands one argument over as a list)."""
    if isinstance(args, list) and args:
        return str(args[0])
    return str(args)


def register(services: WebServices) -> None:
    @ui.page("/notifications", title="Notifications · IoT Hub")
    async def notifications_page(request: Request) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "notifications")
        if not can_acknowledge(principal.role):
            with frame.content:
                ui.label("Notification settings are for operators and administrators.").classes(
                    "p-4 text-negative"
                ).mark("notifications-forbidden")
            return None
        client = request.client.host if request.client is not None else None
        await NotificationsPage(frame, services.notifications, principal, client).build()
        return None


class NotificationsPage:
    def __init__(
        self,
        frame: PageFrame,
        service: NotificationService,
        principal: Principal,
        client: str | None,
    ) -> None:
        self.frame = frame
        self.service = service
        self.principal = principal
        self.client = client
        self.admin = can_administer(principal.role)

    async def build(self) -> None:
        with self.frame.content:
            if not self.service.available:
                ui.label("Notifications need the PostgreSQL storage.").classes("p-4")
                return
            ui.label("Channels").classes("text-lg font-semibold")
            self.channels = (
                ui.table(columns=CHANNEL_COLUMNS, rows=[], row_key="name")
                .props("dense flat bordered wrap-cells hide-pagination")
                .classes("w-full")
                .mark("channel-table")
                .props("data-testid=channel-table")
            )
            self.channels.pagination = {"rowsPerPage": 0}
            if self.admin:
                self.channels.add_slot(
                    "body-cell-name",
                    r"""<q-td :props="props">{{ props.value }}
                    <q-btn flat dense size="sm" icon="send" color="primary"
                      :data-testid="'test-' + props.row.name"
                      @click="$parent.$emit('test', props.row.name)"><q-tooltip>Send test message
                      </q-tooltip></q-btn>
                    <q-btn v-if="props.row.source !== 'file (read-only)'" flat dense size="sm"
                      icon="delete" color="negative"
                      :data-testid="'delete-channel-' + props.row.name"
                      @click="$parent.$emit('remove', props.row.name)"/></q-td>""",
                )
                self.channels.on("test", lambda e: self._test(_name_of(e.args)))
                self.channels.on("remove", lambda e: self._delete_channel(_name_of(e.args)))
                self._editor("channel", CHANNEL_EXAMPLE, self._save_channel)
            self.test_result = ui.label().classes("text-sm").mark("test-result")
            self.test_result.props("data-testid=test-result")
            ui.label("Routes").classes("text-lg font-semibold mt-4")
            self.routes = (
                ui.table(columns=ROUTE_COLUMNS, rows=[], row_key="name")
                .props("dense flat bordered wrap-cells hide-pagination")
                .classes("w-full")
                .mark("route-table")
                .props("data-testid=route-table")
            )
            self.routes.pagination = {"rowsPerPage": 0}
            if self.admin:
                self.routes.add_slot(
                    "body-cell-name",
                    r"""<q-td :props="props">{{ props.value }}
                    <q-btn v-if="props.row.source !== 'file (read-only)'" flat dense size="sm"
                      icon="delete" color="negative"
                      :data-testid="'delete-route-' + props.row.name"
                      @click="$parent.$emit('remove', props.row.name)"/></q-td>""",
                )
                self.routes.on("remove", lambda e: self._delete_route(_name_of(e.args)))
                self._editor("route", ROUTE_EXAMPLE, self._save_route)
            ui.markdown(
                "Entries from `HUB_NOTIFICATIONS_FILE` are read-only here: edit the file. "
                "Format, pacing and the delivery guarantee: `docs/notifications.md`."
            ).classes("text-sm opacity-70")
        await self.refresh()

    def _editor(self, kind: str, example: str, save: Any) -> None:
        with ui.expansion(f"Add or replace a {kind}").classes("w-full").mark(f"{kind}-editor"):
            text = (
                ui.textarea(f"The {kind}, as in the notifications file", value=example)
                .props("outlined autogrow")
                .classes("w-full font-mono")
                .mark(f"{kind}-text")
                .props(f"data-testid={kind}-text")
            )
            error = ui.label().classes("text-negative text-sm").mark(f"{kind}-error")
            error.props(f"data-testid={kind}-error")
            ui.button(f"Save {kind}", on_click=lambda: save(text.value or "", error)).mark(
                f"{kind}-save"
            ).props(f"data-testid={kind}-save")

    async def refresh(self) -> None:
        self.channels.rows = [channel_row(c) for c in await self.service.channels(self.principal)]
        self.routes.rows = [route_row(r) for r in await self.service.routes(self.principal)]
        self.channels.update()
        self.routes.update()

    async def _apply(self, action: Any, error: ui.label | None) -> bool:
        try:
            await action()
        except (ConfigError, Conflict, Missing, Unavailable, PermissionError) as exc:
            if error is not None:
                error.text = str(exc)
            else:
                ui.notify(str(exc), type="negative")
            return False
        if error is not None:
            error.text = ""
        await self.refresh()
        return True

    async def _save_channel(self, text: str, error: ui.label) -> None:
        async def save() -> None:
            await self.service.save_channel(
                self.principal, parse_entry(text), self.client, create_only=False
            )

        if await self._apply(save, error):
            ui.notify("Channel saved", type="positive")

    async def _save_route(self, text: str, error: ui.label) -> None:
        async def save() -> None:
            await self.service.save_route(
                self.principal, parse_entry(text), self.client, create_only=False
            )

        if await self._apply(save, error):
            ui.notify("Route saved", type="positive")

    async def _delete_channel(self, name: str) -> None:
        await self._apply(
            lambda: self.service.delete_channel(self.principal, name, self.client), None
        )

    async def _delete_route(self, name: str) -> None:
        await self._apply(
            lambda: self.service.delete_route(self.principal, name, self.client), None
        )

    async def _test(self, name: str) -> None:
        self.test_result.text = f"Sending a test message on {name}..."
        try:
            result = await self.service.send_test(self.principal, name, self.client)
        except (Missing, Unavailable, PermissionError) as exc:
            self.test_result.text = str(exc)
            return
        if result.delivered:
            self.test_result.text = f"Test message delivered on {name} ({result.detail})."
        else:
            self.test_result.text = f"Test message on {name} failed: {result.detail}."
        self.test_result.classes(replace="text-sm")
