"""The worker's rule reload (hub.agents.rules_reload) over in-memory rule versions."""

from __future__ import annotations

import logging

import pytest

from hub.agents.rules_reload import RulesReloader
from hub.rules import RuleSet, Threshold
from hub.rules.edits import RuleChange, apply_changes, empty_document, load_seed
from hub.storage.memory_rule_versions import MemoryRuleVersions

RULE_ID = "cnc_spindle.spindle_temp_c.threshold"


def warn_high(rules: RuleSet) -> float | None:
    rule = next(r for r in rules.for_type("cnc_spindle").rules if r.id == RULE_ID)
    assert isinstance(rule, Threshold)
    return rule.warn_high


async def test_a_new_version_is_applied_once_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    versions = MemoryRuleVersions()
    applied: list[RuleSet] = []

    async def apply(rules: RuleSet) -> None:
        applied.append(rules)

    reloader = RulesReloader(load_seed(), versions, apply)
    assert await reloader.poll() is False  # no edits yet: the seed stays
    edit = apply_changes(
        empty_document(), [RuleChange("spindle_temp_c.threshold", {"warn_high": 60}, "cnc_spindle")]
    )
    await versions.append(edit, author="alice", base=0)
    with caplog.at_level(logging.INFO, logger="hub.app"):
        assert await reloader.poll() is True
        assert await reloader.poll() is False
    assert [warn_high(r) for r in applied] == [60]
    assert [(r.getMessage(), getattr(r, "version", None)) for r in caplog.records] == [
        ("rules_reloaded", 1)
    ]
    assert reloader.version == 1


async def test_a_version_that_does_not_build_keeps_the_rules_in_force(
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = MemoryRuleVersions()
    applied: list[RuleSet] = []

    async def apply(rules: RuleSet) -> None:
        applied.append(rules)

    reloader = RulesReloader(load_seed(), versions, apply)
    bad = {"version": 1, "types": {"cnc_spindle": {"rules": {"x": {"kind": "nope"}}}}}
    await versions.append(bad, author="mallory", base=0)
    with caplog.at_level(logging.INFO, logger="hub.app"):
        assert await reloader.poll() is False
        assert await reloader.poll() is False  # logged once, not every poll
    assert applied == []
    assert reloader.failed_total == 1
    assert [r.getMessage() for r in caplog.records] == ["rules_reload_failed"]
    # The next good version is applied.
    await versions.append(empty_document(), author="alice", base=1)
    assert await reloader.poll() is True
    assert [warn_high(r) for r in applied] == [75]
