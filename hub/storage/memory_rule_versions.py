"""The in-memory `RuleVersions` (`hub.storage.rule_versions`), for tests of the pages, the API
and the worker's reload that need no database. One event loop; no awaits inside a method."""

from __future__ import annotations

import copy
import time
from typing import Any

from hub.storage.rule_versions import RuleVersion, VersionConflict, check_page

__all__ = ["MemoryRuleVersions"]


class MemoryRuleVersions:
    def __init__(self) -> None:
        self._versions: list[RuleVersion] = []

    async def current_version(self) -> int:
        return len(self._versions)

    async def get(self, version: int) -> RuleVersion | None:
        if 1 <= version <= len(self._versions):
            return self._copy(self._versions[version - 1])
        return None

    async def latest(self) -> RuleVersion | None:
        return self._copy(self._versions[-1]) if self._versions else None

    async def history(self, limit: int = 100, offset: int = 0) -> list[RuleVersion]:
        check_page(limit, offset)
        newest_first = self._versions[::-1]
        return [self._copy(v) for v in newest_first[offset : offset + limit]]

    async def append(
        self,
        document: dict[str, Any],
        *,
        author: str,
        base: int,
        comment: str | None = None,
        rollback_of: int | None = None,
    ) -> RuleVersion:
        if base != len(self._versions):
            raise VersionConflict(base, len(self._versions))
        if rollback_of is not None and not 1 <= rollback_of <= len(self._versions):
            raise ValueError(f"rollback_of: no version {rollback_of}")
        version = RuleVersion(
            version=base + 1,
            document=copy.deepcopy(document),
            author=author,
            created_at=int(time.time() * 1000),
            comment=comment,
            rollback_of=rollback_of,
        )
        self._versions.append(version)
        return self._copy(version)

    @staticmethod
    def _copy(version: RuleVersion) -> RuleVersion:
        # A caller mutating what it got must not change the history.
        return RuleVersion(
            version.version,
            copy.deepcopy(version.document),
            version.author,
            version.created_at,
            version.comment,
            version.rollback_of,
        )
