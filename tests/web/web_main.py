"""The app as NiceGUI's `user` fixture runs it in-process (`nicegui.testing.user_simulation`
executes this file): the real pages on the real stores (`hub.web.server.open_context`), set up
from the HUB_* environment the `user` fixture in conftest.py provides."""

from __future__ import annotations

import contextlib

from nicegui import app, ui

from hub.settings import HubSettings
from hub.web.pages import register_pages
from hub.web.server import open_context

settings = HubSettings()
assert settings.web_storage_secret is not None
_stack = contextlib.AsyncExitStack()


async def _startup() -> None:
    await _stack.enter_async_context(open_context(settings))


async def _shutdown() -> None:
    await _stack.aclose()


app.on_startup(_startup)
app.on_shutdown(_shutdown)
register_pages()
ui.run(storage_secret=settings.web_storage_secret.get_secret_value(), title="IoT Hub")
