"""The web storage contract (tests/contracts/web_storage.py) on the in-memory adapters."""

from __future__ import annotations

import pytest

from hub.storage.memory_web import MemoryAccounts, MemoryAuditLog, MemoryHub
from tests.contracts.web_storage import Stores, WebStorageContract


class TestMemoryWebStorage(WebStorageContract):
    @pytest.fixture
    def stores(self) -> Stores:
        hub = MemoryHub(gateway_offline_after_s=30)
        audit = MemoryAuditLog()
        return Stores(feed=hub, reads=hub, alerts=hub, accounts=MemoryAccounts(audit), audit=audit)
