"""Fixtures for the dashboard's tests on the real stores (PostgreSQL in a throwaway database of
its own, Redis in a database number of its own): NiceGUI's in-process `user` for the few page
tests that look into the database, and for the browser tests a real `iot-hub web` process and
headless Debian Chromium. The other page tests run on the in-memory stores (tests/unit/pages)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nicegui.testing.user import User
from redis.asyncio import Redis
from selenium import webdriver

from hub.storage.accounts import PostgresAccounts
from hub.storage.live import LiveStore
from hub.storage.postgres import Database
from tests.integration.conftest import PostgresServer, reset_data
from tests.support.feed import HubFeed
from tests.support.pages import STORAGE_SECRET, simulated_user, use_temporary_storage
from tests.support.services import run_services
from tests.support.web import WebProcess
from tests.web.browser import Page, chromium, install_browser

WEB_MAIN = Path(__file__).with_name("web_main.py")
# Redis keys of these tests live in a database number of their own, so the overview's
# `iot:gateways` and latest values hold only what a test put there. (Pub/sub channels are not
# per database: tests tell their own live messages apart by unique device ids.)
REDIS_DB = int(os.environ.get("WEB_TEST_REDIS_DB", "9"))


def pytest_configure(config: pytest.Config) -> None:
    use_temporary_storage()


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
        yield HubFeed(database=database, live=live, auth=PostgresAccounts(database._pool))
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


@pytest.fixture
async def user(
    feed: HubFeed,
    web_database_url: str,
    web_redis_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the app (tests/web/web_main.py) on the real stores."""
    for key, value in web_env(web_database_url, web_redis_url).items():
        monkeypatch.setenv(key, value)
    async with simulated_user(WEB_MAIN, caplog) as simulated:
        yield simulated


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
