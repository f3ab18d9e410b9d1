"""The operator dashboard's pages (NiceGUI): sign-in, overview, device charts, alerts, and
the audit log (admins).

`register_pages()` is called once by `hub.web.server.build`; every page needs a signed-in
session (see `session`) and gets its data through `hub.web.context.get_context()`.
"""

from __future__ import annotations

from nicegui import ui

from hub.web.pages import alerts, audit, device, login, overview
from hub.web.pages.layout import SHARED_CSS

__all__ = ["register_pages"]


def register_pages() -> None:
    ui.add_css(SHARED_CSS, shared=True)
    login.register()
    overview.register()
    device.register()
    alerts.register()
    audit.register()
