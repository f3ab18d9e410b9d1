"""The metadata store contract (tests/contracts/metadata_store.py) on the in-memory adapter."""

from __future__ import annotations

import pytest

from hub.storage.memory_metadata import MemoryMetadataStore
from hub.storage.metadata_store import MetadataStore
from tests.contracts.metadata_store import MetadataStoreContract

# Mypy holds the adapter to the port here.
_port: MetadataStore = MemoryMetadataStore()


class TestMemoryMetadataStore(MetadataStoreContract):
    @pytest.fixture
    def store(self) -> MetadataStore:
        return MemoryMetadataStore()
