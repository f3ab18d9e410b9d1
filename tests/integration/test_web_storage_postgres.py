"""The web storage contract (tests/contracts/web_storage.py) on the real adapters: PostgreSQL
(the session's database, emptied per test) and Redis (a database number of its own, emptied
of `iot:*` keys per test)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.live import LiveStore
from hub.storage.model import AlertRow, AlertTransitionLike, WriteResult
from hub.storage.postgres import Database
from hub.storage.read_model import PostgresReadModel, redis_client
from hub.storage.redis_values import GatewayHealth
from protocol import NormalisedReading
from tests.contracts.web_storage import Stores, WebStorageContract

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("CONTRACT_TEST_REDIS_DB", "11"))


class WorkerFeed:
    """What the worker writes, through its own adapters."""

    def __init__(self, database: Database, live: LiveStore) -> None:
        self._database = database
        self._live = live

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult:
        return await self._database.write_readings(readings)

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        return await self._database.mark_presence(device_id, state, ts_ms)

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        return await self._database.rebuild_rollups(since_ms, until_ms)

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        return await self._database.rebuild_tier(name, since_ms, until_ms)

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        return await self._database.apply_alert(t)

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool:
        return await self._live.update_latest(readings)

    async def set_gateway_state(self, health: GatewayHealth) -> bool:
        return await self._live.set_gateway_state(health)


class TestPostgresWebStorage(WebStorageContract):
    @pytest.fixture
    async def stores(
        self, pool: asyncpg.Pool, database: Database, redis_url: str
    ) -> AsyncIterator[Stores]:
        url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
        admin = Redis.from_url(url)
        keys = [key async for key in admin.scan_iter(match="iot:*", count=1000)]
        if keys:
            await admin.delete(*keys)
        client = redis_client(url)
        live = LiveStore(client)
        try:
            yield Stores(
                feed=WorkerFeed(database, live),
                reads=PostgresReadModel(pool, client, gateway_offline_after_s=30),
                alerts=database,
                accounts=PostgresAccounts(pool),
                audit=PostgresAuditLog(pool),
            )
        finally:
            await client.aclose()
            await admin.aclose()
