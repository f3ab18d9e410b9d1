"""`/audit` (admins only): the audit log, newest first, filtered by action, outcome and actor,
a page of `PAGE_SIZE` at a time. Read-only: the page has no control that changes an entry,
and the table refuses any change anyway (db/0003_security.sql)."""

from __future__ import annotations

import json
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.storage.audit_model import ACTIONS, AuditEntry, AuditFilter, Outcome
from hub.web.container import WebServices
from hub.web.model import can_administer
from hub.web.pages import session
from hub.web.pages.layout import PageFrame, list_pager, page_frame, show_list_page
from hub.web.views.times import format_time

__all__ = ["register", "row_of"]

PAGE_SIZE: Final = 100
ALL: Final = "all"
_ACTION_CHOICES: Final[dict[str, str]] = {
    ALL: "all actions",
    "auth.": "sign-in and sign-out",
    "alert.": "alert actions",
    "user.": "user changes",
    "token.": "token changes",
    "rules.": "rule edits",
    **{a: a for a in ACTIONS},
}
_OUTCOMES: Final[dict[str, str]] = {ALL: "any outcome", "success": "success", "failure": "failure"}
_MAX_DETAILS_CHARS: Final = 300
COLUMNS: Final = [
    {"name": "at", "label": "When", "field": "at", "align": "left"},
    {"name": "actor", "label": "Who", "field": "actor", "align": "left"},
    {"name": "client", "label": "From", "field": "client", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "target", "label": "On", "field": "target", "align": "left"},
    {"name": "details", "label": "Details", "field": "details", "align": "left"},
]


def row_of(entry: AuditEntry, tz: ZoneInfo) -> dict[str, Any]:
    """One table row: text only (Quasar renders it as text, never as HTML)."""
    details = json.dumps(entry.details, separators=(", ", ": "), ensure_ascii=False)
    if len(details) > _MAX_DETAILS_CHARS:
        details = details[:_MAX_DETAILS_CHARS] + "..."
    return {
        "id": entry.id,
        "at": format_time(entry.at, tz),
        "actor": entry.actor,
        "client": entry.client or "",
        "action": entry.action,
        "outcome": entry.outcome,
        "target": entry.target or "",
        "details": "" if details == "{}" else details,
    }


def register(services: WebServices) -> None:
    @ui.page("/audit", title="Audit log · IoT Hub")
    async def audit_page(request: Request) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "audit")
        if not can_administer(principal.role):
            with frame.content:
                ui.label("The audit log is for administrators only.").classes(
                    "p-4 text-negative"
                ).mark("audit-forbidden").props("data-testid=audit-forbidden")
            return None
        await AuditPage(frame).build()
        return None


class AuditPage:
    def __init__(self, frame: PageFrame) -> None:
        self.frame = frame
        self.filter = AuditFilter(limit=PAGE_SIZE)

    async def build(self) -> None:
        with self.frame.content:
            with ui.row().classes("w-full items-end gap-3 flex-wrap"):
                self.action_select = (
                    ui.select(_ACTION_CHOICES, value=ALL, label="Action", on_change=self._filter)
                    .props("dense options-dense")
                    .classes("w-56")
                    .mark("audit-action")
                )
                self.outcome_select = (
                    ui.select(_OUTCOMES, value=ALL, label="Outcome", on_change=self._filter)
                    .props("dense options-dense")
                    .classes("w-40")
                    .mark("audit-outcome")
                )
                self.actor_input = (
                    ui.input("Who (exact)")
                    .props("dense clearable debounce=400 maxlength=128")
                    .classes("w-56")
                    .mark("audit-actor")
                )
                self.actor_input.on_value_change(self._filter)
                ui.space()
                self.count_label = ui.label().classes("text-sm opacity-70").mark("audit-count")
            self.table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id")
                .props("dense flat bordered wrap-cells")
                .classes("w-full")
                .mark("audit-table")
                .props("data-testid=audit-table")
            )
            self.table.pagination = {"rowsPerPage": 0}  # the pager below pages, not the table
            self.table.props("hide-pagination")
            self.pager = list_pager(self._page)
        await self.refresh()

    async def _filter(self) -> None:
        action = self.action_select.value
        outcome: Outcome | None = (
            "success"
            if self.outcome_select.value == "success"
            else "failure"
            if self.outcome_select.value == "failure"
            else None
        )
        actor = (self.actor_input.value or "").strip()[:128] or None
        self.filter = AuditFilter(
            action=None if action == ALL else action,
            outcome=outcome,
            actor=actor,
            limit=PAGE_SIZE,
        )
        self.pager.value = 1
        await self.refresh()

    async def _page(self) -> None:
        offset = (int(self.pager.value or 1) - 1) * PAGE_SIZE
        f = self.filter
        self.filter = AuditFilter(
            action=f.action, outcome=f.outcome, actor=f.actor, limit=PAGE_SIZE, offset=offset
        )
        await self.refresh()

    async def refresh(self) -> None:
        # Checked again at every read: an admin demoted meanwhile sees no more.
        principal = await session.current_principal(self.frame.services.auth)
        if principal is None or not can_administer(principal.role):
            ui.navigate.to("/")
            return
        page = await self.frame.services.audit.entries(self.filter)
        self.table.rows = [row_of(e, self.frame.tz) for e in page.items]
        self.table.update()
        show_list_page(page, "record", self.count_label, self.pager)
