"""Live rule reload: each worker polls the newest version of the dashboard's rule edits
(`hub.storage.rule_versions`) and swaps its engine's rules when it changes, without a restart.

The rules are the seed (packaged defaults, HUB_RULES_FILE) with the version's edits over it,
built exactly as the web process validated them. A version that does not build (it should not
happen: every edit is validated before it is stored, but the seed may differ between processes)
is logged once and the rules in force are kept; the next version is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from hub.rules import RulesError, RuleSet
from hub.rules.edits import Seed, build_rules, empty_document
from hub.storage.rule_versions import RuleVersion

log = logging.getLogger("hub.app")


class RuleVersionSource(Protocol):
    """What the reload reads (`hub.storage.rule_versions.RuleVersions`)."""

    async def current_version(self) -> int: ...

    async def get(self, version: int) -> RuleVersion | None: ...


class RulesReloader:
    """Tracks the version in force; `poll` applies a newer one through `apply`."""

    def __init__(
        self,
        seed: Seed,
        source: RuleVersionSource,
        apply: Callable[[RuleSet], Awaitable[None]],
    ) -> None:
        self._seed = seed
        self._source = source
        self._apply = apply
        self.version = 0  # the seed alone
        self.failed_total = 0

    async def poll(self) -> bool:
        """Apply the newest version if it is not the one in force; True if rules changed."""
        current = await self._source.current_version()
        if current == self.version:
            return False
        row = await self._source.get(current) if current else None
        document = row.document if row is not None else empty_document()
        try:
            rules = build_rules(self._seed, document)
        except RulesError as exc:
            self.failed_total += 1
            log.error(
                "rules_reload_failed",
                extra={"version": current, "kept": self.version, "problems": exc.problems},
            )
            self.version = current  # tried once; the next version gets its own try
            return False
        await self._apply(rules)
        before, self.version = self.version, current
        log.info(
            "rules_reloaded",
            extra={
                "version": current,
                "previous": before,
                "author": row.author if row else None,
            },
        )
        return True
