"""The operator dashboard's pages (NiceGUI): sign-in, overview, device charts, alerts,
maintenance windows, the alert rules (everyone reads, admins edit), notification channels and
routes (operators read, admins change), device metadata and the asset hierarchy (everyone
reads, admins edit), and the audit log (admins).

`register_pages()` is called once by `hub.web.server.build`; every page needs a signed-in
session (see `session`) and gets its data from the app's services
(`hub.web.container.WebServices`), handed to each page's `register` and on to its frame.
"""

from __future__ import annotations

from nicegui import ui

from hub.web.container import WebServices
from hub.web.pages import (
    alerts,
    audit,
    device,
    login,
    maintenance,
    metadata,
    notifications,
    overview,
    rules,
)
from hub.web.pages.layout import SHARED_CSS

__all__ = ["register_pages"]


def register_pages(services: WebServices) -> None:
    ui.add_css(SHARED_CSS, shared=True)
    login.register(services)
    overview.register(services)
    device.register(services)
    alerts.register(services)
    audit.register(services)
    maintenance.register(services)
    rules.register(services)
    notifications.register(services)
    metadata.register(services)
