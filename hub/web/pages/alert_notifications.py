"""The "Who was told" dialog of the alerts page: every notification attempt of one alert
(`NotificationService.attempts`): when, by which channel, what, and delivered, failed or
suppressed and why. Its own module, so the alerts page only places the button."""

from __future__ import annotations

from typing import Any, Final
from zoneinfo import ZoneInfo

from nicegui import ui

from hub.notify.store import Attempt
from hub.web.container import WebServices
from hub.web.notify_service import Unavailable
from hub.web.views.times import format_time

__all__ = ["AttemptsDialog", "attempt_row"]

COLUMNS: Final = [
    {"name": "at", "label": "When", "field": "at", "align": "left"},
    {"name": "channel", "label": "Channel", "field": "channel", "align": "left"},
    {"name": "event", "label": "What", "field": "event", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "detail", "label": "Why", "field": "detail", "align": "left"},
]


def attempt_row(a: Attempt, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": a.id,
        "at": format_time(a.at, tz),
        "channel": a.channel,
        "event": a.event,
        "outcome": a.outcome,
        "detail": a.detail or "",
    }


class AttemptsDialog:
    """One dialog for the page; `button` places an opener on an alert's card."""

    def __init__(self, services: WebServices, tz: ZoneInfo) -> None:
        self._services = services
        self._tz = tz
        with ui.dialog() as self.dialog, ui.card().classes("w-[48rem] max-w-[95vw]"):
            self.title = ui.label("Notifications").classes("text-lg font-medium")
            self.table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id")
                .props("dense flat bordered wrap-cells hide-pagination")
                .classes("w-full")
                .mark("attempts-table")
                .props("data-testid=attempts-table")
            )
            self.table.pagination = {"rowsPerPage": 0}
            self.empty = ui.label("Nobody was notified of this alert.").classes("opacity-70")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=self.dialog.close).props("flat")

    def button(self, alert_id: int) -> None:
        ui.button(icon="campaign", on_click=lambda: self.open(alert_id)).props(
            "dense flat round"
        ).mark(f"notified-{alert_id}").props(f"data-testid=notified-{alert_id}").tooltip(
            "Who was told"
        )

    async def open(self, alert_id: int) -> None:
        try:
            attempts = await self._services.notifications.attempts(alert_id)
        except Unavailable:
            attempts = []
        self.title.text = f"Notifications of alert {alert_id}"
        self.table.rows = [attempt_row(a, self._tz) for a in attempts]
        self.table.update()
        self.empty.set_visibility(not attempts)
        self.dialog.open()
