"""The worker storage contract (tests/contracts/worker_storage.py) on `Database`: the session's
PostgreSQL database, emptied per test (rows and readings partitions: see the `pg` fixture)."""

from __future__ import annotations

import asyncpg
import pytest

from hub.storage.memory_rollups import Rollup
from hub.storage.memory_worker import DeviceRecord, device_state
from hub.storage.partitions import datetime_to_ms
from hub.storage.postgres import Database
from hub.windows import BucketKey
from hub.worker.runtime import HubDatabase
from tests.contracts.worker_storage import WorkerStorageContract, WorkerStores

pytestmark = pytest.mark.integration


def _ms(value: object) -> int | None:
    return None if value is None else datetime_to_ms(value)  # type: ignore[arg-type]


class PostgresPeek:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def device(self, device_id: str) -> DeviceRecord | None:
        r = await self._conn.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        if r is None:
            return None
        return DeviceRecord(
            device_id=r["device_id"],
            site=r["site"],
            type=r["type"],
            gateway_id=r["gateway_id"],
            first_seen=_ms(r["first_seen"]),
            last_seen=_ms(r["last_seen"]),
            metrics=tuple(r["metrics"]),
            state=device_state(r["state"]),
            state_ts=_ms(r["state_ts"]),
        )

    async def rollups(self, tier: str = "1m") -> dict[BucketKey, Rollup]:
        rows = await self._conn.fetch(f"SELECT * FROM readings_{tier}")
        return {
            (r["device_id"], r["metric"], datetime_to_ms(r["bucket"])): Rollup(
                count=r["count"],
                min=r["min"],
                max=r["max"],
                avg=r["avg"],
                last=r["last"],
                last_ts=datetime_to_ms(r["last_ts"]),
            )
            for r in rows
        }


class TestPostgresWorkerStorage(WorkerStorageContract):
    @pytest.fixture
    def worker_stores(self, database: Database, pg: asyncpg.Connection) -> WorkerStores:
        port: HubDatabase = database  # mypy holds the adapter to the port here
        return WorkerStores(db=port, peek=PostgresPeek(pg))
