"""The contract of the rule versions port (`hub.storage.rule_versions.RuleVersions`), one suite
for every adapter: subclassed with a `versions` fixture by
tests/unit/test_rule_versions_memory.py and tests/integration/test_rule_versions_postgres.py."""

from __future__ import annotations

import time

import pytest

from hub.storage.rule_versions import RuleVersions, VersionConflict

EDIT = {"version": 1, "types": {"conveyor": {"rules": {"jammed.threshold": {"enabled": False}}}}}


class RuleVersionsContract:
    async def test_empty_history(self, versions: RuleVersions) -> None:
        assert await versions.current_version() == 0
        assert await versions.latest() is None
        assert await versions.get(1) is None
        assert await versions.history() == []

    async def test_append_numbers_versions_and_keeps_everything(
        self, versions: RuleVersions
    ) -> None:
        before = int(time.time() * 1000)
        first = await versions.append(EDIT, author="alice", base=0, comment="jams are noise")
        second = await versions.append({"version": 1}, author="bob", base=1)
        assert (first.version, second.version) == (1, 2)
        assert await versions.current_version() == 2
        got = await versions.get(1)
        assert got == first
        assert got is not None
        assert got.document == EDIT
        assert (got.author, got.comment, got.rollback_of) == ("alice", "jams are noise", None)
        assert before - 1000 <= got.created_at <= int(time.time() * 1000) + 1000
        assert await versions.latest() == second
        assert [v.version for v in await versions.history()] == [2, 1]
        assert [v.version for v in await versions.history(limit=1, offset=1)] == [1]

    async def test_an_edit_on_a_stale_base_is_refused_and_nothing_is_written(
        self, versions: RuleVersions
    ) -> None:
        await versions.append(EDIT, author="alice", base=0)
        with pytest.raises(VersionConflict) as info:
            await versions.append({"version": 1}, author="bob", base=0)
        assert (info.value.base, info.value.current) == (0, 1)
        assert await versions.current_version() == 1

    async def test_a_rollback_is_a_new_version_pointing_at_the_old_one(
        self, versions: RuleVersions
    ) -> None:
        await versions.append(EDIT, author="alice", base=0)
        await versions.append({"version": 1}, author="alice", base=1)
        old = await versions.get(1)
        assert old is not None
        back = await versions.append(old.document, author="carol", base=2, rollback_of=1)
        assert (back.version, back.rollback_of, back.document) == (3, 1, EDIT)
        assert [v.version for v in await versions.history()] == [3, 2, 1]

    async def test_a_rollback_to_no_version_is_refused(self, versions: RuleVersions) -> None:
        with pytest.raises(ValueError, match="rollback_of"):
            await versions.append(EDIT, author="alice", base=0, rollback_of=7)
        assert await versions.current_version() == 0

    async def test_what_a_caller_gets_is_a_copy(self, versions: RuleVersions) -> None:
        got = await versions.append({"version": 1, "types": {}}, author="alice", base=0)
        got.document["types"]["x"] = {}
        again = await versions.get(1)
        assert again is not None
        assert again.document == {"version": 1, "types": {}}

    async def test_bad_pages_are_refused(self, versions: RuleVersions) -> None:
        with pytest.raises(ValueError, match="limit"):
            await versions.history(limit=0)
        with pytest.raises(ValueError, match="offset"):
            await versions.history(offset=-1)
