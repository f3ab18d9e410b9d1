"""Schema, partition and rollup upkeep: once at worker start-up, then on an hourly timer.

At start-up, before any agent consumes, the worker applies pending migrations (safe from several
workers at once) and makes sure the day partitions around today exist; a database that is away
is waited for, as ingest waits. The hourly pass creates the partitions ahead and drops those past
the retention, then deletes each rollup tier's rows past its own retention
(`HUB_ROLLUP_RETENTION_DAYS`); it is housekeeping, so a failure is logged and retried on the next
pass, never fatal (a batch for a missing day creates its partition on demand anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import asyncpg

from hub.agents.poison import describe_error
from hub.agents.retry import Retrier, is_transient_db_error

log = logging.getLogger(__name__)

T = TypeVar("T")


class SchemaStore(Protocol):
    """What upkeep needs from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def migrate(self) -> list[str]: ...

    async def ensure_partitions(
        self, now_ms: int, ahead_days: int, behind_days: int = 1
    ) -> list[str]: ...

    async def drop_expired_partitions(self, now_ms: int, retention_days: int) -> list[str]: ...


async def prepare_schema(
    db: SchemaStore,
    *,
    now_ms: int,
    ahead_days: int,
    retrier: Retrier,
) -> None:
    applied = await retrier.db(db.migrate, what="startup_migrate")
    created = await retrier.db(
        lambda: db.ensure_partitions(now_ms, ahead_days), what="startup_partitions"
    )
    log.info(
        "schema_ready",
        extra={"migrations_applied": ",".join(applied) or "-", "partitions_created": len(created)},
    )


async def maintain_partitions(
    db: SchemaStore,
    *,
    now_ms: int,
    ahead_days: int,
    retention_days: int,
    is_transient: Callable[[BaseException], bool] = is_transient_db_error,
) -> bool:
    """One hourly pass; True when it completed. Database errors are logged, not raised: the
    next pass tries again (a lock timeout behind a long query is the common one)."""

    async def attempt() -> tuple[list[str], list[str]]:
        created = await db.ensure_partitions(now_ms, ahead_days)
        return created, await db.drop_expired_partitions(now_ms, retention_days)

    done = await _housekeeping("partition_maintenance_failed", attempt, is_transient)
    if done is None:
        return False
    created, dropped = done
    if created or dropped:
        log.info(
            "partition_maintenance_done",
            extra={"created": ",".join(created) or "-", "dropped": ",".join(dropped) or "-"},
        )
    return True


async def _housekeeping(
    failed_event: str,
    attempt: Callable[[], Awaitable[T]],
    is_transient: Callable[[BaseException], bool],
) -> T | None:
    """`attempt()`, or None after logging why it failed. A database error that is not
    transient (permissions, a broken partition) is no reason to stop ingesting either, but an
    operator must look: it is logged as an error."""
    try:
        return await attempt()
    except asyncpg.PostgresError as exc:
        level = logging.WARNING if is_transient(exc) else logging.ERROR
        log.log(level, failed_event, extra={"error": describe_error(exc)})
        return None
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning(failed_event, extra={"error": describe_error(exc)})
        return None


class RollupRetentionStore(Protocol):
    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]: ...


async def maintain_rollups(
    db: RollupRetentionStore,
    *,
    now_ms: int,
    retention_days: Mapping[str, int],
    is_transient: Callable[[BaseException], bool] = is_transient_db_error,
) -> bool:
    """Delete each tier's rows past its retention; True when it completed. Errors are logged as
    for the partitions: the next pass tries again."""
    deleted = await _housekeeping(
        "rollup_retention_failed",
        lambda: db.drop_expired_rollups(now_ms, retention_days),
        is_transient,
    )
    if deleted is None:
        return False
    if any(deleted.values()):
        log.info("rollup_retention_done", extra={f"deleted_{k}": v for k, v in deleted.items()})
    return True
