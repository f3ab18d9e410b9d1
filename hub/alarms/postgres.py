"""The `AlarmStore` port on PostgreSQL: the shelf columns of `alerts` and `maintenance_windows`
(db/0006_shelving_maintenance.sql), over the web app's or the worker's asyncpg pool."""

from __future__ import annotations

import json
from typing import Any, Final

import asyncpg

from hub.alarms.ports import DuplicateNameError
from hub.alarms.windows import (
    DeviceRef,
    MaintenanceWindow,
    WindowSpec,
    parse_schedule,
    parse_scope,
)
from hub.storage.model import AlertRow
from hub.storage.partitions import datetime_to_ms, ms_to_datetime
from hub.storage.postgres import alert_row

__all__ = ["PostgresAlarmStore"]

_SHELVE: Final = """
UPDATE alerts SET shelved_by = $2, shelve_reason = $3, shelved_until = $4, shelved_at = now()
WHERE id = $1
RETURNING *
"""
# The alarm's other rows too: the insert trigger would carry a live shelf to its next alert.
_UNSHELVE: Final = """
WITH target AS (SELECT device_id, gateway_id, rule FROM alerts WHERE id = $1),
cleared AS (
    UPDATE alerts a
    SET shelved_by = NULL, shelve_reason = NULL, shelved_until = NULL, shelved_at = NULL
    FROM target t
    WHERE a.shelved_until IS NOT NULL
      AND (a.id = $1 OR (coalesce(a.device_id, '') = coalesce(t.device_id, '')
                         AND coalesce(a.gateway_id, '') = coalesce(t.gateway_id, '')
                         AND a.rule = t.rule))
    RETURNING a.id
)
SELECT count(*) FROM cleared
"""
_WINDOW_INSERT: Final = """
INSERT INTO maintenance_windows (name, suppress, schedule, scope, comment, created_by, updated_by)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $6)
RETURNING *
"""
_WINDOW_UPDATE: Final = """
UPDATE maintenance_windows
SET name = $2, suppress = $3, schedule = $4::jsonb, scope = $5::jsonb, comment = $6,
    updated_by = $7, updated_at = now()
WHERE id = $1
RETURNING *
"""


def window_of(record: Any) -> MaintenanceWindow:
    spec = WindowSpec(
        name=record["name"],
        suppress=record["suppress"],
        schedule=parse_schedule(json.loads(record["schedule"])),
        scope=parse_scope(json.loads(record["scope"])),
        comment=record["comment"],
    )
    return MaintenanceWindow(
        id=record["id"],
        spec=spec,
        created_by=record["created_by"],
        created_at=datetime_to_ms(record["created_at"]),
        updated_by=record["updated_by"],
        updated_at=datetime_to_ms(record["updated_at"]),
    )


def _spec_args(spec: WindowSpec) -> tuple[object, ...]:
    return (
        spec.name,
        spec.suppress,
        json.dumps(spec.schedule.to_json()),
        json.dumps(spec.scope.to_json()),
        spec.comment,
    )


class PostgresAlarmStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_alert(self, alert_id: int) -> AlertRow | None:
        record = await self._pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return None if record is None else alert_row(record)

    async def shelve_alert(
        self, alert_id: int, by: str, reason: str, until_ms: int
    ) -> AlertRow | None:
        record = await self._pool.fetchrow(_SHELVE, alert_id, by, reason, ms_to_datetime(until_ms))
        return None if record is None else alert_row(record)

    async def unshelve_alert(self, alert_id: int) -> AlertRow | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.fetchval(_UNSHELVE, alert_id)
            record = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return None if record is None else alert_row(record)

    async def shelves_ended(self, after_ms: int, until_ms: int) -> list[AlertRow]:
        records = await self._pool.fetch(
            "SELECT * FROM alerts WHERE shelved_until > $1 AND shelved_until <= $2 "
            "ORDER BY id LIMIT 1000",
            ms_to_datetime(after_ms),
            ms_to_datetime(until_ms),
        )
        return [alert_row(r) for r in records]

    async def device_ref(self, device_id: str) -> DeviceRef | None:
        record = await self._pool.fetchrow(
            "SELECT device_id, gateway_id, site, type FROM devices WHERE device_id = $1",
            device_id,
        )
        if record is None:
            return None
        return DeviceRef(record["device_id"], record["gateway_id"], record["site"], record["type"])

    async def windows(self) -> list[MaintenanceWindow]:
        records = await self._pool.fetch("SELECT * FROM maintenance_windows ORDER BY name")
        return [window_of(r) for r in records]

    async def window(self, window_id: int) -> MaintenanceWindow | None:
        record = await self._pool.fetchrow(
            "SELECT * FROM maintenance_windows WHERE id = $1", window_id
        )
        return None if record is None else window_of(record)

    async def create_window(self, spec: WindowSpec, by: str) -> MaintenanceWindow:
        try:
            record = await self._pool.fetchrow(_WINDOW_INSERT, *_spec_args(spec), by)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateNameError(spec.name) from exc
        return window_of(record)

    async def update_window(
        self, window_id: int, spec: WindowSpec, by: str
    ) -> MaintenanceWindow | None:
        try:
            record = await self._pool.fetchrow(_WINDOW_UPDATE, window_id, *_spec_args(spec), by)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateNameError(spec.name) from exc
        return None if record is None else window_of(record)

    async def delete_window(self, window_id: int) -> MaintenanceWindow | None:
        record = await self._pool.fetchrow(
            "DELETE FROM maintenance_windows WHERE id = $1 RETURNING *", window_id
        )
        return None if record is None else window_of(record)
