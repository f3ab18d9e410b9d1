"""The frame every signed-in page shares: a header with the navigation, the live count of active
critical alerts, who is signed in, the dark-mode switch and sign-out; a toast for each new
critical alert; and the page's one live subscription (`LivePump`). Also the count and pager of a
paginated list (`list_pager`, `show_list_page`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from nicegui import ui

from hub.storage.postgres import TRANSIENT_ERRORS
from hub.storage.web_ports import ReadModel
from hub.web.container import WebServices
from hub.web.model import AlertFilter, Page, Principal, can_acknowledge, can_administer
from hub.web.pages import session
from hub.web.pages.live import LivePump
from hub.web.views.numbers import format_page
from hub.web.views.times import zone

__all__ = ["NavItem", "PageFrame", "critical_count", "list_pager", "page_frame", "show_list_page"]

log = logging.getLogger(__name__)

NavItem = Literal[
    "overview", "alerts", "device", "audit", "maintenance", "rules", "notifications", "metadata"
]
SESSION_CHECK_S: Final = 5.0

# Auto (the browser's setting) -> dark -> light -> auto.
_DARK_CYCLE: Final[dict[bool | None, bool | None]] = {None: True, True: False, False: None}
_DARK_ICON: Final[dict[bool | None, str]] = {
    None: "brightness_auto",
    True: "dark_mode",
    False: "light_mode",
}
_DARK_TIP: Final[dict[bool | None, str]] = {
    None: "Theme: follows the system (click for dark)",
    True: "Theme: dark (click for light)",
    False: "Theme: light (click to follow the system)",
}

SHARED_CSS: Final = """
.iot-new-critical { animation: iot-pulse 1.2s ease-in-out 4; border-left: 6px solid #c10015; }
@keyframes iot-pulse { 50% { background-color: rgba(193, 0, 21, 0.25); } }
.iot-mono { font-variant-numeric: tabular-nums; }
.iot-spark polyline { fill: none; stroke: currentColor; stroke-width: 1.5;
  vector-effect: non-scaling-stroke; }
"""


@dataclass
class PageFrame:
    services: WebServices
    principal: Principal
    tz: ZoneInfo
    pump: LivePump
    content: ui.column

    @property
    def can_acknowledge(self) -> bool:
        return can_acknowledge(self.principal.role)


async def critical_count(reads: ReadModel) -> int:
    page = await reads.alerts(AlertFilter(status="active", severity="critical", limit=1))
    return page.total


async def page_frame(
    services: WebServices,
    principal: Principal,
    active: NavItem,
    *,
    devices: frozenset[str] | None = frozenset(),
) -> PageFrame:
    """Build the header and return the frame; put the page's own content into ``content``.
    ``devices``: whose live readings the page wants (None: every device's)."""
    pump = LivePump(services.fanout, devices=devices, alerts=True)
    header = Header(services, principal, active, await critical_count(services.reads))
    pump.on_alerts(header.on_alerts)
    ui.timer(SESSION_CHECK_S, _session_check(services, session.session_id()))
    content = ui.column().classes("w-full max-w-screen-2xl mx-auto p-2 sm:p-4 gap-4")
    return PageFrame(
        services=services,
        principal=principal,
        tz=zone(session.time_zone_name()),
        pump=pump,
        content=content,
    )


class Header:
    """The header of every page: navigation with the critical-alert badge, the user, the
    dark-mode toggle, sign-out; a critical alert raised meanwhile is notified."""

    def __init__(
        self, services: WebServices, principal: Principal, active: NavItem, critical: int
    ) -> None:
        self._services = services
        self._principal = principal
        self._dark = ui.dark_mode(session.dark_preference(principal.name))
        with ui.header(elevated=True).classes("items-center gap-2 px-3 py-1 flex-wrap"):
            ui.link("IoT Hub", "/").classes("text-lg font-semibold text-white no-underline mr-2")
            _nav_link("Overview", "/", active == "overview", "dashboard")
            with _nav_link("Alerts", "/alerts", active == "alerts", "notifications"):
                self.badge = (
                    ui.badge(str(critical), color="negative")
                    .props("floating rounded")
                    .mark("critical-count")
                    .props("data-testid=critical-count")
                )
                self.badge.set_visibility(critical > 0)
                self.badge.tooltip("active critical alerts")
            _nav_link("Maintenance", "/maintenance", active == "maintenance", "construction").mark(
                "nav-maintenance"
            )
            _nav_link("Rules", "/rules", active == "rules", "tune").mark("nav-rules").props(
                "data-testid=nav-rules"
            )
            _nav_link("Assets", "/metadata", active == "metadata", "account_tree").mark(
                "nav-metadata"
            ).props("data-testid=nav-metadata")
            if can_acknowledge(principal.role):
                _nav_link(
                    "Notifications", "/notifications", active == "notifications", "campaign"
                ).mark("nav-notifications").props("data-testid=nav-notifications")
            if can_administer(principal.role):
                _nav_link("Audit", "/audit", active == "audit", "policy").mark("nav-audit").props(
                    "data-testid=nav-audit"
                )
            ui.space()
            self._user(principal)
            self.dark_button = (
                ui.button(icon=_DARK_ICON[self._dark.value], on_click=self.toggle_dark)
                .props("flat round dense color=white")
                .mark("dark-toggle")
                .props("data-testid=dark-toggle")
            )
            with self.dark_button:
                self.dark_tip = ui.tooltip(_DARK_TIP[self._dark.value])
            ui.button(icon="logout", on_click=self.logout).props(
                "flat round dense color=white"
            ).mark("logout").props("data-testid=logout").tooltip("Sign out")

    @staticmethod
    def _user(principal: Principal) -> None:
        with ui.row().classes("items-center gap-1 no-wrap"):
            ui.icon("person").classes("text-white")
            ui.label(principal.name).classes("text-white max-w-[10rem] truncate").mark(
                "user-name"
            ).props("data-testid=user-name")
            ui.label(principal.role).classes(
                "text-white text-xs opacity-80 border rounded px-1"
            ).mark("user-role").props("data-testid=user-role")

    def toggle_dark(self) -> None:
        dark = self._dark
        dark.value = _DARK_CYCLE[dark.value]
        session.set_dark_preference(self._principal.name, dark.value)
        self.dark_button.props(f"icon={_DARK_ICON[dark.value]}")
        self.dark_tip.text = _DARK_TIP[dark.value]

    async def logout(self) -> None:
        await session.sign_out(self._services.auth, self._principal)  # logs and audits it
        ui.navigate.to("/login")

    async def on_alerts(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("event") == "raised" and event.get("severity") == "critical":
                where = event.get("device_id") or event.get("gateway_id") or "?"
                ui.notify(
                    f"Critical alert on {where}: {event.get('message', '')}",
                    type="negative",
                    position="top-right",
                    timeout=10_000,
                    close_button=True,
                )
        total = await critical_count(self._services.reads)
        self.badge.text = str(total)
        self.badge.set_visibility(total > 0)


def _session_check(services: WebServices, session_id: str | None) -> Callable[[], Awaitable[None]]:
    async def check_session() -> None:
        # An open page holds no request to refuse: ask the database now and then whether the
        # session still stands (logout elsewhere, password changed, user removed, expired).
        if not services.ready:
            return  # the app is shutting down
        try:
            valid = session_id is not None and await services.auth.session_user(session_id)
        except TRANSIENT_ERRORS:
            return  # the database is away: the page shows what it has; ask again next time
        if not valid:
            ui.navigate.to("/login")

    return check_session


def _nav_link(text: str, target: str, active: bool, icon: str) -> ui.button:
    # A real link (q-btn renders <a href>), so it opens in a new tab like any other.
    button = ui.button(text, icon=icon).props(f"flat no-caps color=white href={target}")
    if active:
        button.classes("bg-white/20")
    return button


def list_pager(on_change: Callable[[], Any]) -> ui.pagination:
    """The page switcher under a list, hidden while the list fits on one page."""
    with ui.row().classes("w-full justify-center"):
        pager = ui.pagination(1, 1, direction_links=True, on_change=on_change)
        pager.set_visibility(False)
    return pager


def show_list_page(page: Page[Any], noun: str, count: ui.label, pager: ui.pagination) -> None:
    """A list's count (`1-100 of 250 alerts`) and its pager, for the page now shown."""
    count.text = format_page(page, noun)
    pages = max(1, -(-page.total // page.limit))
    pager.max = pages
    pager.set_visibility(pages > 1)
