"""The app as NiceGUI's `user` fixture runs it in-process (`nicegui.testing.user_simulation`
executes this file): the app factory (`hub.web.server.build`) on the real stores, set up from
the HUB_* environment the `user` fixture in conftest.py provides."""

from __future__ import annotations

from nicegui import ui

from hub.settings import HubSettings
from hub.web.server import build

settings = HubSettings()
assert settings.web_storage_secret is not None
build(settings)
ui.run(storage_secret=settings.web_storage_secret.get_secret_value(), title="IoT Hub")
