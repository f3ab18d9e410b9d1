"""Alert rules in the dashboard and the API: the rules in force with where each value comes
from, an admin's edits (validated by the rule loader, versioned, audited), the history, the
difference between two versions and rollbacks (`hub.rules.edits`, `hub.storage.rule_versions`).

Version 0 is the seed alone (packaged defaults and HUB_RULES_FILE): it has no row, but can be
compared with and rolled back to like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hub.rules import RulesError
from hub.rules.edits import (
    Document,
    EffectiveRule,
    FieldDiff,
    RuleChange,
    Seed,
    apply_changes,
    build_rules,
    diff_documents,
    effective_rules,
    empty_document,
)
from hub.storage.audit_model import Action, Actor, AuditEvent
from hub.storage.rule_versions import RuleVersion, RuleVersions
from hub.storage.web_ports import AuditTrail
from hub.web.model import Principal, can_administer

__all__ = ["MAX_COMMENT_CHARS", "RuleEditError", "RulesService", "RulesView"]

log = logging.getLogger("hub.web.rules")

MAX_COMMENT_CHARS: Final = 1000
MAX_CHANGES: Final = 200
_AUDITED_DIFFS: Final = 50  # the audit row lists this many changed fields at most


class RuleEditError(ValueError):
    """An edit the rules model refuses: `problems` name the field of each (nothing applied)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class RulesView:
    version: int  # the version in force (0: the seed alone)
    rules: list[EffectiveRule]


def _require_admin(by: Principal) -> None:
    if not can_administer(by.role):
        raise PermissionError(f"role {by.role!r} may not edit alert rules; admin only")


def _comment(comment: str | None) -> str | None:
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise RuleEditError([f"comment: at most {MAX_COMMENT_CHARS} characters"])
    return comment


class RulesService:
    def __init__(self, versions: RuleVersions, seed: Seed, audit: AuditTrail) -> None:
        self._versions = versions
        self._seed = seed
        self._audit = audit

    async def document(self, version: int) -> Document | None:
        """The edits of `version` (0: none); None if there is no such version."""
        if version == 0:
            return empty_document()
        row = await self._versions.get(version)
        return None if row is None else row.document

    async def view(self) -> RulesView:
        latest = await self._versions.latest()
        document = latest.document if latest is not None else empty_document()
        return RulesView(latest.version if latest else 0, effective_rules(self._seed, document))

    async def history(self, limit: int = 100, offset: int = 0) -> list[RuleVersion]:
        return await self._versions.history(limit, offset)

    async def history_with_changes(
        self, limit: int = 100, offset: int = 0
    ) -> list[tuple[RuleVersion, list[FieldDiff]]]:
        """Newest first, each with what it changed from the version before it."""
        versions = await self._versions.history(limit, offset)
        if not versions:
            return []
        oldest = versions[-1].version
        before = await self.document(oldest - 1)
        documents = [v.document for v in versions[1:]] + [before or empty_document()]
        return [
            (v, diff_documents(self._seed, previous, v.document))
            for v, previous in zip(versions, documents, strict=True)
        ]

    async def get(self, version: int) -> RuleVersion | None:
        return await self._versions.get(version)

    async def diff(self, old: int, new: int) -> list[FieldDiff] | None:
        """What changes from version `old` to `new`; None if either does not exist."""
        before, after = await self.document(old), await self.document(new)
        if before is None or after is None:
            return None
        return diff_documents(self._seed, before, after)

    async def edit(
        self,
        changes: Sequence[RuleChange],
        by: Principal,
        *,
        comment: str | None = None,
        base: int | None = None,
        client: str | None = None,
    ) -> RuleVersion:
        """A new version with `changes` over the current one, as `by` (admin only, else
        PermissionError). RuleEditError names each field the rules model refuses, and nothing
        is stored; VersionConflict if `base` is given and is not the current version."""
        _require_admin(by)
        comment = _comment(comment)
        if not changes:
            raise RuleEditError(["changes: give at least one change"])
        if len(changes) > MAX_CHANGES:
            raise RuleEditError([f"changes: at most {MAX_CHANGES} per edit"])
        latest = await self._versions.latest()
        current = latest.version if latest else 0
        before = latest.document if latest else empty_document()
        try:
            after = apply_changes(before, changes)
        except ValueError as exc:
            raise RuleEditError([str(exc)]) from None
        return await self._store(
            after,
            before,
            by,
            base=current if base is None else base,
            comment=comment,
            client=client,
            action="rules.edit",
        )

    async def rollback(
        self,
        to: int,
        by: Principal,
        *,
        comment: str | None = None,
        client: str | None = None,
    ) -> RuleVersion | None:
        """A new version with the edits of version `to` (0: none); None if there is no such
        version. Refused like an edit if those edits no longer build over today's seed."""
        _require_admin(by)
        comment = _comment(comment)
        target = await self.document(to)
        if target is None:
            return None
        latest = await self._versions.latest()
        current = latest.version if latest else 0
        before = latest.document if latest else empty_document()
        return await self._store(
            target,
            before,
            by,
            base=current,
            comment=comment or f"rollback to version {to}",
            client=client,
            action="rules.rollback",
            rollback_of=to or None,
        )

    async def _store(
        self,
        after: Document,
        before: Document,
        by: Principal,
        *,
        base: int,
        comment: str | None,
        client: str | None,
        action: Action,
        rollback_of: int | None = None,
    ) -> RuleVersion:
        try:
            build_rules(self._seed, after)  # the same checks as defaults.yaml and the file
        except RulesError as exc:
            await self._audit.record(
                AuditEvent(
                    Actor(by.name, client),
                    action,
                    outcome="failure",
                    target=str(base + 1),
                    details={"problems": exc.problems[:_AUDITED_DIFFS]},
                )
            )
            raise RuleEditError(exc.problems) from None
        changed = [str(d) for d in diff_documents(self._seed, before, after)]
        row = await self._versions.append(
            after, author=by.name, base=base, comment=comment, rollback_of=rollback_of
        )
        log.info(
            "rules_version_saved",
            extra={"version": row.version, "author": by.name, "changed": len(changed)},
        )
        await self._audit.record(
            AuditEvent(
                Actor(by.name, client),
                action,
                target=str(row.version),
                details={
                    "comment": comment,
                    "rollback_of": rollback_of,
                    "changed": changed[:_AUDITED_DIFFS],
                    "changed_total": len(changed),
                },
            )
        )
        return row
