"""The rule versions contract (tests/contracts/rule_versions.py) on PostgreSQL, plus what only
the database enforces: history cannot be rewritten."""

from __future__ import annotations

import asyncpg
import pytest

from hub.storage.rule_versions import PostgresRuleVersions, RuleVersions
from tests.contracts.rule_versions import EDIT, RuleVersionsContract

pytestmark = pytest.mark.integration


@pytest.fixture
async def rule_versions(pool: asyncpg.Pool, pg: asyncpg.Connection) -> RuleVersions:
    await pg.execute("TRUNCATE rule_versions")
    port: RuleVersions = PostgresRuleVersions(pool)  # mypy holds the adapter to the port
    return port


class TestPostgresRuleVersions(RuleVersionsContract):
    @pytest.fixture
    def versions(self, rule_versions: RuleVersions) -> RuleVersions:
        return rule_versions


async def test_the_database_refuses_to_rewrite_history(
    rule_versions: RuleVersions, pg: asyncpg.Connection
) -> None:
    await rule_versions.append(EDIT, author="alice", base=0)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pg.execute("UPDATE rule_versions SET author = 'mallory'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pg.execute("DELETE FROM rule_versions")
    assert await pg.fetchval("SELECT author FROM rule_versions") == "alice"
