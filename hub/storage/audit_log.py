"""The audit log in PostgreSQL (`audit_log`, db/0003_security.sql), the `AuditTrail` port's real
adapter: append and list, nothing else. The table's triggers refuse UPDATE, DELETE and
TRUNCATE, and this module has no such statement either.

`record_event` takes a connection so that a change and its audit row commit together
(`hub.storage.accounts` does this); `PostgresAuditLog.record` uses the pool.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import asyncpg

from hub.storage.audit_model import AuditEntry, AuditEvent, AuditFilter
from hub.storage.partitions import datetime_to_ms, ms_to_datetime
from hub.storage.web_model import Page

__all__ = ["PostgresAuditLog", "log_event", "record_event"]

# The name its log lines have always carried (the module was hub/web/audit_store.py).
log = logging.getLogger("hub.web.audit_store")

_INSERT: Final = (
    "INSERT INTO audit_log (actor, action, outcome, client, target, details) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
)


async def record_event(conn: asyncpg.Connection | asyncpg.Pool, event: AuditEvent) -> None:
    actor, action, outcome, client, target, details = event.row()
    await conn.execute(_INSERT, actor, action, outcome, client, target, json.dumps(details))
    log_event(event)


def log_event(event: AuditEvent) -> None:
    """The same event as a log line, for whoever ships logs to a SIEM rather than reading SQL
    (every audit store writes it)."""
    actor, action, outcome, client, target, _ = event.row()
    log.info(
        "audit",
        extra={
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "client": client or "-",
            "target": target or "-",
        },
    )


class PostgresAuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, event: AuditEvent) -> None:
        await record_event(self._pool, event)

    async def entries(self, f: AuditFilter) -> Page[AuditEntry]:
        """Newest first, filtered; the total counts every page."""
        f.validate()
        clauses: list[str] = []
        args: list[Any] = []

        def add(template: str, value: Any) -> None:
            args.append(value)
            clauses.append(template.format(f"${len(args)}"))

        if f.since is not None:
            add("at >= {}", ms_to_datetime(f.since))
        if f.until is not None:
            add("at < {}", ms_to_datetime(f.until))
        if f.actor is not None:
            add("actor = {}", f.actor)
        if f.action is not None:
            if f.action.endswith("."):
                add("starts_with(action, {})", f.action)
            else:
                add("action = {}", f.action)
        if f.outcome is not None:
            add("outcome = {}", f.outcome)
        where = " AND ".join(clauses) or "true"
        n = len(args)
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM audit_log WHERE {where} ORDER BY at DESC, id DESC "
                f"LIMIT ${n + 1} OFFSET ${n + 2}",
                *args,
                f.limit,
                f.offset,
            )
            if f.offset == 0 and len(rows) < f.limit:
                total = len(rows)
            else:
                total = await conn.fetchval(f"SELECT count(*) FROM audit_log WHERE {where}", *args)
        return Page(items=[_entry(r) for r in rows], total=total, limit=f.limit, offset=f.offset)


def _entry(row: asyncpg.Record) -> AuditEntry:
    details = row["details"]
    return AuditEntry(
        id=row["id"],
        at=datetime_to_ms(row["at"]),
        actor=row["actor"],
        action=row["action"],
        outcome=row["outcome"],
        client=row["client"],
        target=row["target"],
        details=json.loads(details) if isinstance(details, str) else dict(details),
    )
