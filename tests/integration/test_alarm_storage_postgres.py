"""The alarm storage contract (tests/contracts/alarm_storage.py) on PostgreSQL (the session's
database, emptied per test), and what the contract cannot see: the rows' constraints."""

from __future__ import annotations

import asyncpg
import pytest

from hub.alarms.postgres import PostgresAlarmStore
from hub.storage.postgres import Database
from tests.contracts.alarm_storage import AlarmStorageContract, Stores

pytestmark = pytest.mark.integration


class TestPostgresAlarmStorage(AlarmStorageContract):
    @pytest.fixture
    async def stores(self, pg: asyncpg.Connection, database: Database) -> Stores:
        await pg.execute("TRUNCATE maintenance_windows RESTART IDENTITY")
        return Stores(feed=database, alarms=PostgresAlarmStore(database.pool))


async def test_a_half_written_shelf_is_refused(pg: asyncpg.Connection) -> None:
    alert_id = await pg.fetchval(
        "INSERT INTO alerts (device_id, rule, severity, message, raised_at, updated_at) "
        "VALUES ('d1', 'r', 'warning', 'm', now(), now()) RETURNING id"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await pg.execute(
            "UPDATE alerts SET shelved_until = now() + interval '1 hour' WHERE id = $1", alert_id
        )


async def test_a_window_must_say_what_it_suppresses(pg: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await pg.execute(
            "INSERT INTO maintenance_windows (name, suppress, schedule, scope, created_by, "
            "updated_by) VALUES ('w', 'everything', '{}', '{}', 'a', 'a')"
        )
