"""Fixtures for the dashboard's tests: the real stores (PostgreSQL in a throwaway database of
its own, Redis in a database number of its own), NiceGUI's in-process `user`, and for the
browser tests a real `iot-hub web` process and headless Debian Chromium."""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nicegui import app
from nicegui.storage import Storage
from nicegui.testing.user import User
from nicegui.testing.user_simulation import user_simulation
from redis.asyncio import Redis
from selenium import webdriver

from hub.storage.accounts import PostgresAccounts
from hub.storage.live import LiveStore
from hub.storage.postgres import Database
from hub.web.container import WebServices
from tests.integration.conftest import PostgresServer, reset_data
from tests.support.services import run_services
from tests.support.waiting import async_wait_until
from tests.support.web import WebProcess
from tests.web.browser import Page, chromium, install_browser
from tests.web.feed import HubFeed

WEB_MAIN = Path(__file__).with_name("web_main.py")
# Redis keys of these tests live in a database number of their own, so the overview's
# `iot:gateways` and latest values hold only what a test put there. (Pub/sub channels are not
# per database: tests tell their own live messages apart by unique device ids.)
REDIS_DB = int(os.environ.get("WEB_TEST_REDIS_DB", "9"))
STORAGE_SECRET = "test-storage-secret-not-for-production"


def pytest_configure(config: pytest.Config) -> None:
    # What nicegui.testing's own plugin does: NiceGUI's file storage (sessions, preferences)
    # in a temporary directory, not in .nicegui/ of the working tree.
    Storage.path = Path(tempfile.mkdtemp(prefix="nicegui-test-storage-")).resolve()
    atexit.register(shutil.rmtree, Storage.path, ignore_errors=True)
    app.storage = Storage()


@pytest.fixture(scope="session")
def web_database_url() -> Iterator[str]:
    """A migrated database of the web tests' own, dropped at the end of the session."""
    run_services("start", "postgres")
    with PostgresServer.from_env().own_database("iot_test_web") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def web_redis_url() -> str:
    run_services("start", "redis")
    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    return f"redis://{host}:{os.environ.get('REDIS_PORT', '6379')}/{REDIS_DB}"


async def empty_stores(database_url: str, redis: Redis) -> None:
    """No rows, no users, no `iot:*` keys in the tests' Redis database."""
    database = await Database.connect(database_url)
    try:
        async with database._pool.acquire() as conn:
            await reset_data(conn)
            await conn.execute("TRUNCATE users, api_tokens, web_sessions")
    finally:
        await database.close()
    keys = [key async for key in redis.scan_iter(match="iot:*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def feed(web_database_url: str, web_redis_url: str) -> AsyncIterator[HubFeed]:
    """Empty stores, and the means to fill them as the hub's worker would."""
    redis = Redis.from_url(web_redis_url)
    await empty_stores(web_database_url, redis)
    database = await Database.connect(web_database_url)
    live = LiveStore(redis)
    try:
        yield HubFeed(
            database=database, live=live, auth=PostgresAccounts(database._pool), redis=redis
        )
    finally:
        await database.close()
        await redis.aclose()


def web_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "HUB_DATABASE_URL": database_url,
        "HUB_REDIS_URL": redis_url,
        "HUB_WEB_STORAGE_SECRET": STORAGE_SECRET,
        "HUB_LOG_LEVEL": "INFO",
    }


# What the browser would answer to the pages' JavaScript questions.
JAVASCRIPT_ANSWERS: dict[re.Pattern[str], Any] = {
    re.compile(r".*Intl\.DateTimeFormat.*", re.S): lambda _: "Europe/Berlin",
    re.compile(r".*window\.innerWidth.*", re.S): lambda _: 1440,
    re.compile(r".*_fullLayout.*", re.S): lambda _: True,
}


@pytest.fixture
async def user(
    feed: HubFeed,
    web_database_url: str,
    web_redis_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the real app (tests/web/web_main.py) and real stores. Fails
    the test on any ERROR log, as NiceGUI's own fixture does."""
    for key, value in web_env(web_database_url, web_redis_url).items():
        monkeypatch.setenv(key, value)
    # NiceGUI's reset drops the modules of page functions from sys.modules after each test;
    # put them back, so one session keeps one copy of each module (and of each class).
    modules = dict(sys.modules)
    caplog.set_level(logging.INFO)
    try:
        async with user_simulation(main_file=WEB_MAIN) as simulated:
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


def web_services() -> WebServices:
    """The services of the app the `user` fixture runs."""
    services: WebServices = app.state.web
    return services


async def _ready() -> WebServices | None:
    services: WebServices | None = getattr(app.state, "web", None)
    return services if services is not None and services.ready else None


async def login(user: User, name: str, password: str | None = None) -> None:
    """Sign in through the login page, as a person would."""
    from tests.web.feed import PASSWORD

    await user.open("/login")
    user.find(marker="username").type(name)
    user.find(marker="password").type(password or PASSWORD)
    user.find(marker="login-submit").click()
    with contextlib.suppress(AssertionError):
        await user.should_not_see(marker="login-submit", retries=30)


# -- browser tests ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def web_server(
    web_database_url: str, web_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    """`iot-hub web` as a subprocess on the tests' stores (emptied by `feed` per test)."""
    server = WebProcess(tmp_path_factory.mktemp("web"), web_env(web_database_url, web_redis_url))
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"iot-hub web exited with {code}:\n{server.log()}"
        errors = [
            line for line in server.log().splitlines() if "level=error" in line and "hub" in line
        ]
        assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    install_browser()
    chrome = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def page(driver: webdriver.Chrome, web_server: WebProcess, feed: HubFeed) -> Iterator[Page]:
    """A signed-out browser on the running app, with the stores emptied for this test."""
    driver.delete_all_cookies()
    yield Page(driver, web_server.url)
    driver.delete_all_cookies()
