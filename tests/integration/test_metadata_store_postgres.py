"""The metadata store contract (tests/contracts/metadata_store.py) on PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from hub.storage.metadata_store import MetadataStore, PostgresMetadataStore
from tests.contracts.metadata_store import MetadataStoreContract

pytestmark = pytest.mark.integration


class TestPostgresMetadataStore(MetadataStoreContract):
    @pytest.fixture
    async def store(self, pool: asyncpg.Pool, pg: asyncpg.Connection) -> MetadataStore:
        await pg.execute("TRUNCATE device_metadata")
        port: MetadataStore = PostgresMetadataStore(pool)  # mypy holds the adapter to the port
        return port
