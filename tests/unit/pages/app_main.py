"""The app as NiceGUI's `user` fixture runs it in-process (`nicegui.testing.user_simulation`
executes this file): the app factory (`hub.web.server.build`) on the in-memory services the
`user` fixture of conftest.py built (`tests.support.pages.hand_over`)."""

from __future__ import annotations

from nicegui import ui

from hub.web.server import build
from tests.support.pages import STORAGE_SECRET, take_over

services = take_over()
build(services.settings, services)
ui.run(storage_secret=STORAGE_SECRET, title="IoT Hub")
