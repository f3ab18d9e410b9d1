"""The dashboard's pages on the in-memory stores (`hub.storage.memory_web`), with NiceGUI's
in-process `user`: the whole app as `hub.web.server.build` makes it, no PostgreSQL, Redis or
browser. A few page tests that look into the database itself run on the real stores
(tests/web)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nicegui.testing.user import User
from pydantic import SecretStr

from hub.settings import HubSettings
from hub.storage.memory_web import MemoryAccounts, MemoryAuditLog, MemoryHub
from hub.web.server import memory_services
from tests.support.feed import HubFeed
from tests.support.pages import STORAGE_SECRET, hand_over, simulated_user, use_temporary_storage

APP_MAIN = Path(__file__).with_name("app_main.py")


def pytest_configure(config: pytest.Config) -> None:
    use_temporary_storage()


@dataclass
class MemoryStores:
    hub: MemoryHub
    accounts: MemoryAccounts
    audit: MemoryAuditLog


@pytest.fixture
def stores() -> MemoryStores:
    audit = MemoryAuditLog()
    return MemoryStores(hub=MemoryHub(), accounts=MemoryAccounts(audit), audit=audit)


@pytest.fixture
def feed(stores: MemoryStores) -> HubFeed:
    """The means to fill the stores as the hub's worker would."""
    return HubFeed(database=stores.hub, live=stores.hub, auth=stores.accounts)


@pytest.fixture
async def user(stores: MemoryStores, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the app on this test's in-memory stores."""
    settings = HubSettings(web_storage_secret=SecretStr(STORAGE_SECRET))
    hand_over(memory_services(settings, stores.hub, stores.accounts, stores.audit))
    async with simulated_user(APP_MAIN, caplog) as simulated:
        yield simulated
