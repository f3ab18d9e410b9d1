"""The in-memory `MetadataStore` (`hub.storage.metadata_store`), for tests of the pages, the API
and the agent that need no database. Share one instance between web and worker to share state."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hub.storage.metadata_store import MetadataEntry, Scope, StoredSource, check_entry

__all__ = ["MemoryMetadataStore"]


class MemoryMetadataStore:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str, str], MetadataEntry] = {}

    async def put(
        self, scope: Scope, key: str, source: StoredSource, document: dict[str, Any], by: str
    ) -> MetadataEntry:
        check_entry(scope, key, source)
        entry = MetadataEntry(
            scope, key, source, copy.deepcopy(document), by, int(self._clock() * 1000)
        )
        self._entries[(scope, key, source)] = entry
        return replace(entry, document=copy.deepcopy(document))

    async def delete(self, scope: Scope, key: str, source: StoredSource) -> bool:
        check_entry(scope, key, source)
        return self._entries.pop((scope, key, source), None) is not None

    async def entries(self, scope: Scope, key: str | None = None) -> list[MetadataEntry]:
        found = [
            replace(e, document=copy.deepcopy(e.document))
            for (s, k, _), e in self._entries.items()
            if s == scope and (key is None or k == key)
        ]
        return sorted(found, key=lambda e: (e.key, e.source))
