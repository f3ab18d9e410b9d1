"""The notification storage contract (tests/contracts/notify_storage.py) in memory."""

from __future__ import annotations

import pytest

from hub.notify.store import NotifyStore
from hub.storage.memory_web import MemoryHub
from hub.storage.memory_worker import MemoryDatabase
from hub.storage.model import AlertRow, AlertTransitionLike, WriteResult
from hub.storage.notify_memory import MemoryNotifyStore
from protocol import NormalisedReading
from tests.contracts.notify_storage import NotifyStorageContract, NotifyStores

# Mypy holds the adapter to the port here.
_port: NotifyStore = MemoryNotifyStore(MemoryDatabase())


class MemoryAlerts:
    """The worker's writes (`MemoryDatabase`) and the web app's (`MemoryHub`) on one store."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._hub = MemoryHub(database=db)

    async def write_readings(self, readings: list[NormalisedReading]) -> WriteResult:
        return await self._db.write_readings(readings)

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        return await self._db.apply_alert(t)

    async def acknowledge_alert(
        self, alert_id: int, by: str, comment: str | None
    ) -> AlertRow | None:
        return await self._hub.acknowledge_alert(alert_id, by, comment)

    async def clear_alert(self, alert_id: int, by: str) -> AlertRow | None:
        return await self._hub.clear_alert(alert_id, by)


class TestMemoryNotifyStorage(NotifyStorageContract):
    @pytest.fixture
    def notify_stores(self) -> NotifyStores:
        db = MemoryDatabase()
        return NotifyStores(store=MemoryNotifyStore(db), alerts=MemoryAlerts(db))
