"""The rule versions contract (tests/contracts/rule_versions.py) on the in-memory adapter."""

from __future__ import annotations

import pytest

from hub.storage.memory_rule_versions import MemoryRuleVersions
from hub.storage.rule_versions import RuleVersions
from tests.contracts.rule_versions import RuleVersionsContract

# Mypy holds the adapter to the port here.
_port: RuleVersions = MemoryRuleVersions()


class TestMemoryRuleVersions(RuleVersionsContract):
    @pytest.fixture
    def versions(self) -> RuleVersions:
        return MemoryRuleVersions()
