"""NiceGUI's simulated `user` for the dashboard's page tests, whichever stores the app runs on:
tests/unit/pages (the in-memory stores, no services) and tests/web (the real ones).

`simulated_user` runs an app main file in-process (`nicegui.testing.user_simulation`), waits
for its stores to open, answers the pages' JavaScript questions as a browser would, and fails
the test on any ERROR log, as NiceGUI's own fixture does."""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nicegui import app
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation

from hub.web.container import WebServices
from tests.support.feed import PASSWORD
from tests.support.waiting import async_wait_until

STORAGE_SECRET = "test-storage-secret-not-for-production"

# What the browser would answer to the pages' JavaScript questions.
JAVASCRIPT_ANSWERS: dict[re.Pattern[str], Any] = {
    re.compile(r".*Intl\.DateTimeFormat.*", re.S): lambda _: "Europe/Berlin",
    re.compile(r".*window\.innerWidth.*", re.S): lambda _: 1440,
    re.compile(r".*_fullLayout.*", re.S): lambda _: True,
}


def use_temporary_storage() -> None:
    """What nicegui.testing's own plugin does: NiceGUI's file storage (sessions, preferences)
    in a temporary directory, not in .nicegui/ of the working tree. Once per session."""
    if getattr(use_temporary_storage, "done", False):
        return
    Storage.path = Path(tempfile.mkdtemp(prefix="nicegui-test-storage-")).resolve()
    atexit.register(shutil.rmtree, Storage.path, ignore_errors=True)
    app.storage = Storage()
    use_temporary_storage.done = True  # type: ignore[attr-defined]


def web_services() -> WebServices:
    """The services of the app the `user` fixture runs."""
    services: WebServices = app.state.web
    return services


async def _ready() -> WebServices | None:
    services: WebServices | None = getattr(app.state, "web", None)
    return services if services is not None and services.ready else None


@contextlib.asynccontextmanager
async def simulated_user(main_file: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    # NiceGUI's reset drops the modules of page functions from sys.modules after each test;
    # put them back, so one session keeps one copy of each module (and of each class).
    modules = dict(sys.modules)
    caplog.set_level(logging.INFO)
    try:
        async with user_simulation(main_file=main_file) as simulated:
            simulated.javascript_rules.update(JAVASCRIPT_ANSWERS)
            # NiceGUI runs startup handlers as tasks: wait for the stores to be open.
            services = await async_wait_until(_ready, timeout=20, what="the web app's stores")
            await services.fanout.wait_subscribed(10)
            yield simulated
    finally:
        for name, module in modules.items():
            sys.modules.setdefault(name, module)
        # NiceGUI cancels the pages' tasks at shutdown; a Redis call cancelled mid-flight can
        # leave its socket to the garbage collector, whose ResourceWarning then surfaced at a
        # later test's setup (seen once in four full runs, under load). Collect it here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail(f"ERROR logs: {[r.getMessage() for r in errors]}", pytrace=False)


async def login(user: User, name: str, password: str | None = None) -> None:
    """Sign in through the login page, as a person would."""
    await user.open("/login")
    user.find(marker="username").type(name)
    user.find(marker="password").type(password or PASSWORD)
    user.find(marker="login-submit").click()
    with contextlib.suppress(AssertionError):
        await user.should_not_see(marker="login-submit", retries=30)


# The services a page test built for the app main file it runs (tests/unit/pages/app_main.py):
# `user_simulation` executes that file itself, so the fixture leaves them here for it.
_handed_over: list[WebServices] = []


def hand_over(services: WebServices) -> None:
    _handed_over[:] = [services]


def take_over() -> WebServices:
    services = _handed_over.pop()
    return services
