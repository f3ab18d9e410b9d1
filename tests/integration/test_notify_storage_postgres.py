"""The notification storage contract (tests/contracts/notify_storage.py) on PostgreSQL: the
session's database, emptied per test (see the `pg` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.notify.store import NotifyStore
from hub.storage.notify_postgres import PostgresNotifyStore
from hub.storage.postgres import Database
from tests.contracts.notify_storage import NotifyStorageContract, NotifyStores

pytestmark = pytest.mark.integration


class TestPostgresNotifyStorage(NotifyStorageContract):
    @pytest.fixture
    async def notify_stores(
        self, database: Database, postgres: str, pg: asyncpg.Connection
    ) -> AsyncIterator[NotifyStores]:
        store, pool = await PostgresNotifyStore.connect(postgres)
        port: NotifyStore = store
        yield NotifyStores(store=port, alerts=database)
        await pool.close()
