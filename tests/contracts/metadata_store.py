"""The contract of the device metadata store (`hub.storage.metadata_store.MetadataStore`), one
suite for both adapters: tests/unit/test_metadata_store_memory.py and
tests/integration/test_metadata_store_postgres.py."""

from __future__ import annotations

import pytest

from hub.storage.metadata_store import MetadataStore

DOC = {"area": "Forming", "metrics": {"temp_c": {"unit": "°C", "normal": [0.0, 80.0]}}}


class MetadataStoreContract:
    async def test_empty(self, store: MetadataStore) -> None:
        assert await store.entries("device") == []
        assert await store.delete("device", "press-01", "admin") is False

    async def test_put_replaces_per_source(self, store: MetadataStore) -> None:
        await store.put("device", "press-01", "edge", DOC, "gw-1")
        await store.put("device", "press-01", "admin", {"area": "A"}, "alice")
        await store.put("device", "press-01", "admin", {"area": "B"}, "bob")
        await store.put("type", "conveyor", "admin", {"metrics": {}}, "alice")
        found = await store.entries("device", "press-01")
        assert [(e.source, e.document, e.updated_by) for e in found] == [
            ("admin", {"area": "B"}, "bob"),
            ("edge", DOC, "gw-1"),
        ]
        assert [e.key for e in await store.entries("type")] == ["conveyor"]
        assert await store.entries("device", "press-02") == []

    async def test_delete(self, store: MetadataStore) -> None:
        await store.put("device", "press-01", "admin", DOC, "alice")
        assert await store.delete("device", "press-01", "admin") is True
        assert await store.entries("device") == []

    async def test_what_a_caller_gets_is_a_copy(self, store: MetadataStore) -> None:
        doc = {"metrics": {"temp_c": {"unit": "K"}}}
        entry = await store.put("device", "press-01", "admin", doc, "alice")
        entry.document["metrics"]["temp_c"]["unit"] = "changed"
        doc["metrics"]["temp_c"]["unit"] = "changed too"
        (stored,) = await store.entries("device", "press-01")
        assert stored.document == {"metrics": {"temp_c": {"unit": "K"}}}

    async def test_bad_keys_are_refused(self, store: MetadataStore) -> None:
        with pytest.raises(ValueError, match=r"^scope"):
            await store.put("line", "x", "admin", {}, "alice")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^key"):
            await store.put("device", "", "admin", {}, "alice")
        with pytest.raises(ValueError, match=r"^source"):
            await store.put("device", "x", "seed", {}, "alice")  # type: ignore[arg-type]
        assert await store.entries("device") == []
