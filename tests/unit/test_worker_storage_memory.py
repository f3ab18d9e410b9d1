"""The worker storage contract (tests/contracts/worker_storage.py) on the in-memory adapter."""

from __future__ import annotations

import pytest

from hub.storage.memory_rollups import Rollup
from hub.storage.memory_worker import DeviceRecord, MemoryDatabase
from hub.windows import BucketKey
from hub.worker.runtime import HubDatabase
from tests.contracts.worker_storage import WorkerStorageContract, WorkerStores

# Mypy holds the adapter to the port here.
_port: HubDatabase = MemoryDatabase()


class MemoryPeek:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def device(self, device_id: str) -> DeviceRecord | None:
        return self._db.devices.get(device_id)

    async def rollups(self, tier: str = "1m") -> dict[BucketKey, Rollup]:
        return (self._db.rollups if tier == "1m" else self._db.tiers[tier]).all()


class TestMemoryWorkerStorage(WorkerStorageContract):
    @pytest.fixture
    def worker_stores(self) -> WorkerStores:
        db = MemoryDatabase()
        return WorkerStores(db=db, peek=MemoryPeek(db))
