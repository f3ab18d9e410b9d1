"""The alarm storage contract (tests/contracts/alarm_storage.py) on the in-memory adapter."""

from __future__ import annotations

import pytest

from hub.alarms.memory import MemoryAlarmStore
from hub.storage.memory_web import MemoryHub
from tests.contracts.alarm_storage import AlarmStorageContract, Stores


class TestMemoryAlarmStorage(AlarmStorageContract):
    @pytest.fixture
    def stores(self) -> Stores:
        hub = MemoryHub()
        return Stores(feed=hub, alarms=MemoryAlarmStore(hub.database))
