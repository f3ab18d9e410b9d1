"""PostgreSQL adapter of the hub: readings, devices, rollups and alerts over an asyncpg pool.

Every write is idempotent: replaying any Kafka range lands each reading once (the primary key
absorbs the repeat), rollups are recomputed from `readings` rather than incremented, and a
repeated alert updates the open one.

Errors are asyncpg's own, raised unchanged so that the caller can classify them:
``TRANSIENT_ERRORS`` lists those worth retrying later with the same batch (the database is away,
overloaded, restarting or failing over, or the transaction lost a deadlock or a lock timeout).
Anything else (a constraint violation, bad SQL, a value out of range) will fail again on retry;
``RECORD_ERRORS`` lists those that one row can cause (the caller isolates that row).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import asyncpg

from hub.storage import migrations, partitions, tiers
from hub.storage.copy_binary import READINGS_COLUMNS, readings_copy
from hub.storage.model import (
    ALERT_STATES,
    DEVICE_STATES,
    AlertRow,
    AlertTransitionLike,
    DeviceSeen,
    WriteResult,
    distinct_buckets,
    flatten_readings,
    rollup_bucket_ms,
    summarise_devices,
)
from hub.storage.partitions import DAY_MS, DayPartition, datetime_to_ms, ms_to_datetime
from hub.windows import bucket_ceil
from protocol import NormalisedReading

__all__ = [
    "RECORD_ERRORS",
    "TRANSIENT_ERRORS",
    "AlertRow",
    "AlertTransitionLike",
    "Database",
    "WriteResult",
]

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect timeout) is an OSError too
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError (lost mid-query)
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # 57P01: fast shutdown, a terminated backend
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed
    asyncpg.InsufficientResourcesError,  # class 53: TooManyConnectionsError, disk full, OOM
    asyncpg.TransactionRollbackError,  # class 40: deadlock, serialization failure
    asyncpg.LockNotAvailableError,  # 55P03: lock_timeout, e.g. partition DDL behind a long query
    asyncpg.ReadOnlySQLTransactionError,  # 25006: connected to a standby during a failover
)

# What a record can be to blame for: class 22 (a value out of range, a NUL in text) and class
# 23 (a constraint the row breaks). Every other server error is the system's, not one row's.
RECORD_ERRORS: Final[tuple[type[BaseException], ...]] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)

# A batch may miss a partition, we create it and retry; a second miss means a drop raced us.
_WRITE_ATTEMPTS: Final = 3
_STAGING: Final = "readings_staging"
_MAX_ALERTS: Final = 1000

# Per connection, once: a temp table that COPY fills and every commit empties. Creating a temp
# table per batch instead would churn the system catalogs.
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    device_id text NOT NULL,
    metric    text NOT NULL,
    ts_ms     bigint NOT NULL,
    value     double precision NOT NULL,
    seq       bigint
) ON COMMIT DELETE ROWS
"""
_STAGING_COLUMNS: Final = ("device_id", "metric", "ts_ms", "value", "seq")

# In primary key order: concurrent writers of overlapping rows then lock them in the same order
# and cannot deadlock. Duplicates inside the batch are absorbed like replays.
_INSERT_READINGS = f"""
INSERT INTO readings (device_id, metric, ts, value, seq)
SELECT device_id, metric, to_timestamp(ts_ms / 1000.0), value, seq
FROM {_STAGING}
ORDER BY device_id, metric, ts_ms
ON CONFLICT (device_id, metric, ts) DO NOTHING
"""

# Site, type and gateway follow the newest reading; first_seen and last_seen only widen; a
# batch that tells nothing new (a replay) leaves the row untouched.
_UPSERT_DEVICES = """
INSERT INTO devices AS d (device_id, site, type, gateway_id, first_seen, last_seen, metrics)
SELECT u.device_id, u.site, u.type, u.gateway_id,
       to_timestamp(u.first_ms / 1000.0), to_timestamp(u.last_ms / 1000.0),
       string_to_array(u.metrics, ',')
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
            $7::text[]) AS u(device_id, site, type, gateway_id, first_ms, last_ms, metrics)
ORDER BY u.device_id
ON CONFLICT (device_id) DO UPDATE SET
    site = CASE WHEN d.last_seen IS NULL OR EXCLUDED.last_seen >= d.last_seen
                THEN EXCLUDED.site ELSE d.site END,
    gateway_id = CASE WHEN d.last_seen IS NULL OR EXCLUDED.last_seen >= d.last_seen
                      THEN EXCLUDED.gateway_id ELSE d.gateway_id END,
    type = CASE WHEN d.last_seen IS NULL OR EXCLUDED.last_seen >= d.last_seen
                THEN coalesce(EXCLUDED.type, d.type) ELSE coalesce(d.type, EXCLUDED.type) END,
    first_seen = least(d.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(d.last_seen, EXCLUDED.last_seen),
    metrics = CASE WHEN EXCLUDED.metrics <@ d.metrics THEN d.metrics
                   ELSE ARRAY(SELECT DISTINCT m FROM unnest(d.metrics || EXCLUDED.metrics) AS m
                              ORDER BY m) END
WHERE d.last_seen IS NULL OR EXCLUDED.last_seen > d.last_seen
   OR EXCLUDED.first_seen < d.first_seen OR NOT EXCLUDED.metrics <@ d.metrics
"""

# A state_ts further ahead than the hub ever accepts (HUB_MAX_TS_FUTURE_S is at most a day) was
# written before the hub bounded timestamps; it would keep every later status out for good.
_FROZEN = "{ts} > now() + interval '1 day'"

# Applies the status unless an equally new or newer one was applied already; no row returned
# then. The caller has locked the row (if any) and read its state first.
_SET_DEVICE_STATE = f"""
INSERT INTO devices AS d (device_id, site, gateway_id, first_seen, state, state_changed_at,
                          state_ts)
VALUES ($1, $2, $3, $5, $4, $5, $5)
ON CONFLICT (device_id) DO UPDATE SET
    site = EXCLUDED.site,
    gateway_id = EXCLUDED.gateway_id,
    state = EXCLUDED.state,
    state_changed_at = CASE WHEN d.state = EXCLUDED.state THEN d.state_changed_at
                            ELSE EXCLUDED.state_ts END,
    state_ts = EXCLUDED.state_ts
WHERE d.state_ts IS NULL OR d.state_ts <= EXCLUDED.state_ts OR {_FROZEN.format(ts="d.state_ts")}
RETURNING d.state
"""

# Presence derived by the hub itself (silence, data again) for a device it already knows; an
# explicit status with a newer ts wins, and an unchanged state is not rewritten.
_MARK_PRESENCE = f"""
UPDATE devices SET state = $2, state_changed_at = $3, state_ts = $3
WHERE device_id = $1 AND state IS DISTINCT FROM $2
  AND (state_ts IS NULL OR state_ts <= $3 OR {_FROZEN.format(ts="state_ts")})
RETURNING state
"""

# "last" is the value at the newest ts of the bucket; (device_id, metric, ts) is unique, so
# there is no tie to break.
_AGGREGATES = """
count(*)::integer AS count, min(r.value) AS min, max(r.value) AS max, avg(r.value) AS avg,
(array_agg(r.value ORDER BY r.ts DESC))[1] AS last, max(r.ts) AS last_ts
"""
_ROLLUP_UPSERT = """
ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
    count = EXCLUDED.count, min = EXCLUDED.min, max = EXCLUDED.max, avg = EXCLUDED.avg,
    last = EXCLUDED.last, last_ts = EXCLUDED.last_ts
WHERE (r1.count, r1.min, r1.max, r1.avg, r1.last, r1.last_ts)
      IS DISTINCT FROM (EXCLUDED.count, EXCLUDED.min, EXCLUDED.max, EXCLUDED.avg, EXCLUDED.last,
                        EXCLUDED.last_ts)
"""
_ROLLUP_COLUMNS = "device_id, metric, bucket, count, min, max, avg, last, last_ts"
# The buckets asked for, each from its own rows of `readings` (an index range scan of the
# primary key in one partition).
_RECOMPUTE_ROLLUPS = f"""
INSERT INTO readings_1m AS r1 ({_ROLLUP_COLUMNS})
SELECT w.device_id, w.metric, w.bucket, a.count, a.min, a.max, a.avg, a.last, a.last_ts
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS w(device_id, metric, bucket)
CROSS JOIN LATERAL (
    SELECT {_AGGREGATES}
    FROM readings r
    WHERE r.device_id = w.device_id AND r.metric = w.metric
      AND r.ts >= w.bucket AND r.ts < w.bucket + interval '1 minute'
) a
WHERE a.count > 0
ORDER BY 1, 2, 3
{_ROLLUP_UPSERT}
"""
# Every bucket of a whole-minute window, in one pass over the rows (callers keep the window
# inside one day: without an index on ts alone, each statement scans its partition once).
_REBUILD_ROLLUPS = f"""
INSERT INTO readings_1m AS r1 ({_ROLLUP_COLUMNS})
SELECT r.device_id, r.metric,
       date_bin('1 minute', r.ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, {_AGGREGATES}
FROM readings r
WHERE r.ts >= $1 AND r.ts < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
{_ROLLUP_UPSERT}
"""

# The hourly and daily tiers (hub.storage.tiers), each bucket from its rows of the tier below:
# count summed, avg weighted by count, last at the newest last_ts. {table} and {source} are
# only ever the fixed names of `TIERS`, never input.
_TIER_AGGREGATES = """
sum(s.count)::integer AS count, min(s.min) AS min, max(s.max) AS max,
sum(s.avg * s.count) / sum(s.count) AS avg,
(array_agg(s.last ORDER BY s.last_ts DESC))[1] AS last, max(s.last_ts) AS last_ts
"""
_RECOMPUTE_TIER = f"""
INSERT INTO {{table}} AS r1 ({_ROLLUP_COLUMNS})
SELECT w.device_id, w.metric, w.bucket, a.count, a.min, a.max, a.avg, a.last, a.last_ts
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS w(device_id, metric, bucket)
CROSS JOIN LATERAL (
    SELECT {_TIER_AGGREGATES}
    FROM {{source}} s
    WHERE s.device_id = w.device_id AND s.metric = w.metric
      AND s.bucket >= w.bucket AND s.bucket < w.bucket + $4::interval
) a
WHERE a.count > 0
ORDER BY 1, 2, 3
{_ROLLUP_UPSERT}
"""
_REBUILD_TIER = f"""
INSERT INTO {{table}} AS r1 ({_ROLLUP_COLUMNS})
SELECT s.device_id, s.metric,
       date_bin($3::interval, s.bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
       {_TIER_AGGREGATES}
FROM {{source}} s
WHERE s.bucket >= $1 AND s.bucket < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
{_ROLLUP_UPSERT}
"""

# The conflict target is the partial unique index alerts_one_active_idx (db/0001_init.sql).
# A repeat counts only when newer than anything applied: a replayed transition (same ts) or a
# late one changes nothing, so at-least-once delivery of transitions does not inflate the count.
_RAISE_ALERT = """
INSERT INTO alerts AS a (device_id, gateway_id, rule, severity, metric, value, message,
                         raised_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT ((coalesce(device_id, '')), (coalesce(gateway_id, '')), rule) WHERE state = 'active'
DO UPDATE SET
    occurrences = a.occurrences + 1,
    severity = EXCLUDED.severity, metric = EXCLUDED.metric, value = EXCLUDED.value,
    message = EXCLUDED.message, updated_at = EXCLUDED.updated_at
WHERE EXCLUDED.updated_at > a.updated_at
RETURNING *, (xmax = 0) AS inserted
"""
_ACTIVE_ALERT = """
coalesce(device_id, '') = coalesce($1, '') AND coalesce(gateway_id, '') = coalesce($2, '')
AND rule = $3 AND state = 'active'
"""
# Returns the severity before the update too: a rise to critical is notified again.
_UPDATE_ALERT = f"""
UPDATE alerts a SET severity = $4, metric = $5, value = $6, message = $7, updated_at = $8
FROM (SELECT id, severity FROM alerts WHERE {_ACTIVE_ALERT} AND updated_at <= $8 FOR UPDATE) o
WHERE a.id = o.id
RETURNING a.*, o.severity AS old_severity
"""
# The notification outbox (db/0005_notifications.sql): written in the transaction of the
# transition it tells of, so a crash can neither lose nor invent a notification.
_OUTBOX = "INSERT INTO notification_outbox (alert_id, event) VALUES ($1, $2)"

_CLEAR_ACTIVE_ALERT = f"""
UPDATE alerts SET state = 'cleared', cleared_at = $4, updated_at = greatest(updated_at, $4)
WHERE {_ACTIVE_ALERT}
RETURNING *
"""


async def _prepare_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(_CREATE_STAGING)


def _is_missing_partition(exc: asyncpg.CheckViolationError) -> bool:
    # "no partition of relation ... found for row": reported on the table, not on a constraint
    # (checked by fields, not by the message, which lc_messages may translate).
    return exc.table_name == partitions.PARENT and exc.constraint_name is None


def _notified(kind: str, record: Any) -> str | None:
    """The outbox event a transition owes: a new alert, a rise to critical (routes for critical
    alerts hear of it now) and a clear; nothing for a repeat or another update."""
    if kind == "raised":
        return "firing" if record["inserted"] else None
    if kind == "updated":
        rose = record["severity"] == "critical" and record["old_severity"] != "critical"
        return "firing" if rose else None
    return "resolved"


def _coarse(name: str) -> tiers.Tier:
    t = tiers.tier(name)
    if t not in tiers.COARSE_TIERS:
        raise ValueError(f"tier {name} is recomputed from readings: use the 1-minute methods")
    return t


def _status_count(status: str) -> int:
    """Rows affected, from a command status such as "INSERT 0 12"."""
    return int(status.rsplit(" ", 1)[-1])


def _ms(value: Any) -> int | None:
    return None if value is None else datetime_to_ms(value)


def alert_row(record: Any) -> AlertRow:
    """One `alerts` record; the web app's queries use it too, so both read rows alike."""
    return AlertRow(
        id=record["id"],
        device_id=record["device_id"],
        gateway_id=record["gateway_id"],
        rule=record["rule"],
        severity=record["severity"],
        state=record["state"],
        acknowledged=record["acknowledged"],
        ack_by=record["ack_by"],
        ack_at=_ms(record["ack_at"]),
        ack_comment=record["ack_comment"],
        metric=record["metric"],
        value=record["value"],
        message=record["message"],
        raised_at=datetime_to_ms(record["raised_at"]),
        updated_at=datetime_to_ms(record["updated_at"]),
        cleared_at=_ms(record["cleared_at"]),
        cleared_by=record["cleared_by"],
        occurrences=record["occurrences"],
        shelved_by=record["shelved_by"],
        shelved_at=_ms(record["shelved_at"]),
        shelved_until=_ms(record["shelved_until"]),
        shelve_reason=record["shelve_reason"],
    )


class Database:
    """The hub's PostgreSQL: one asyncpg pool; all timestamps in and out are epoch ms (UTC)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Use ``connect``: the pool's connections need the staging table it sets up."""
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """For the worker's other stores on the same connections (`hub.alarms.postgres`)."""
        return self._pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> Database:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_prepare_connection,
            server_settings={"application_name": "iot-hub", "timezone": "UTC"},
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        """One round trip; raises when the database is unreachable (for readiness checks)."""
        await self._pool.fetchval("SELECT 1")

    # --- schema and partitions ------------------------------------------------------------

    async def migrate(self) -> list[str]:
        async with self._pool.acquire() as conn:
            return await migrations.migrate(conn)

    async def ensure_partitions(
        self, now_ms: int, ahead_days: int, behind_days: int = 1
    ) -> list[str]:
        async with self._pool.acquire() as conn:
            return await partitions.ensure_partitions(conn, now_ms, ahead_days, behind_days)

    async def drop_expired_partitions(self, now_ms: int, retention_days: int) -> list[str]:
        async with self._pool.acquire() as conn:
            return await partitions.drop_expired_partitions(conn, now_ms, retention_days)

    # --- readings and devices -------------------------------------------------------------

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult:
        """Write a batch in one transaction: its readings (replays and duplicates absorbed) and
        the `devices` rows they touch. A day without a partition gets one, and the batch is
        retried; nothing of a failed batch is kept."""
        data, rows = readings_copy(readings)
        if not rows:
            return WriteResult(rows=0, inserted=0, devices=0)
        devices = summarise_devices(readings)
        async with self._pool.acquire() as conn:
            for attempt in range(1, _WRITE_ATTEMPTS + 1):
                try:
                    inserted = await self._write_once(conn, data, readings, devices)
                except asyncpg.CheckViolationError as exc:
                    if not _is_missing_partition(exc) or attempt == _WRITE_ATTEMPTS:
                        raise
                    days = {DayPartition.of(r.ts) for r in readings}
                    created = await partitions.create_partitions(conn, days)
                    logger.info("created partitions on demand", extra={"partitions": created})
                    continue
                return WriteResult(rows=rows, inserted=inserted, devices=len(devices))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _write_once(
        conn: asyncpg.Connection,
        data: bytearray,
        readings: Sequence[NormalisedReading],
        devices: list[DeviceSeen],
    ) -> int:
        async with conn.transaction():
            try:
                # Fast path, for the usual batch of new readings: COPY straight into
                # `readings` (`data`: the batch's rows, already in the binary COPY format). A
                # row already there (a replay, a duplicate in the batch) fails it at once, and
                # the savepoint takes it back for the slow path.
                async with conn.transaction():
                    status = await conn.copy_to_table(
                        "readings", source=data, columns=READINGS_COLUMNS, format="binary"
                    )
                inserted = _status_count(status)
            except asyncpg.UniqueViolationError:
                rows = flatten_readings(readings)
                await conn.copy_records_to_table(_STAGING, records=rows, columns=_STAGING_COLUMNS)
                inserted = _status_count(await conn.execute(_INSERT_READINGS))
            await conn.execute(
                _UPSERT_DEVICES,
                [d.device_id for d in devices],
                [d.site for d in devices],
                [d.type for d in devices],
                [d.gateway_id for d in devices],
                [d.first_ms for d in devices],
                [d.last_ms for d in devices],
                [",".join(d.metrics) for d in devices],  # metric names never hold a comma
            )
        return inserted

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        """Record a device's presence (``online``, ``offline`` or ``unknown``) as of ``ts_ms``.
        Returns True when the state changed (a device never seen before counts as changed); a
        status older than the newest one applied is ignored."""
        if state not in DEVICE_STATES:
            raise ValueError(f"unknown device state: {state!r}")
        async with self._pool.acquire() as conn, conn.transaction():
            old = await conn.fetchval(
                "SELECT state FROM devices WHERE device_id = $1 FOR UPDATE", device_id
            )
            new = await conn.fetchval(
                _SET_DEVICE_STATE, device_id, site, gateway_id, state, ms_to_datetime(ts_ms)
            )
        return new is not None and new != old

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        """Set a known device's state as the hub observed it (``offline`` after silence,
        ``online`` when data returns); True when it changed. Unknown devices are left alone."""
        if state not in DEVICE_STATES:
            raise ValueError(f"unknown device state: {state!r}")
        changed = await self._pool.fetchval(_MARK_PRESENCE, device_id, state, ms_to_datetime(ts_ms))
        return changed is not None

    # --- rollups --------------------------------------------------------------------------

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int:
        """Recompute the given (device_id, metric, bucket_start_ms) minutes from `readings` and
        upsert them into `readings_1m`; any ms inside the minute names its bucket. Returns the
        rollup rows written (unchanged ones are left alone and not counted)."""
        wanted = distinct_buckets(buckets)
        if not wanted:
            return 0
        status = await self._pool.execute(
            _RECOMPUTE_ROLLUPS,
            [d for d, _, _ in wanted],
            [m for _, m, _ in wanted],
            [ms_to_datetime(ms) for _, _, ms in wanted],
        )
        return _status_count(status)

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        """Recompute every bucket with readings in ``[since_ms, until_ms)``, widened to whole
        minutes (so no bucket is rebuilt from part of its rows); ``until_ms`` None means up to
        the end of the newest partition. One statement per UTC day. Returns the rows written."""
        start = rollup_bucket_ms(since_ms)
        if until_ms is None:
            async with self._pool.acquire() as conn:
                names = await partitions.existing_partitions(conn)
            days = [d for d in map(partitions.parse_partition_name, names) if d is not None]
            if not days:
                return 0
            end = max(d.end_ms for d in days)
        else:
            end = bucket_ceil(until_ms)
        written = 0
        while start < end:
            window_end = min(end, start - start % DAY_MS + DAY_MS)
            status = await self._pool.execute(
                _REBUILD_ROLLUPS, ms_to_datetime(start), ms_to_datetime(window_end)
            )
            written += _status_count(status)
            start = window_end
        return written

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[tuple[str, str, int]]:
        """Every (device_id, metric, bucket_start_ms) with readings in ``[since_ms, until_ms)``."""
        records = await self._pool.fetch(
            "SELECT DISTINCT device_id, metric, "
            "date_bin('1 minute', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket "
            "FROM readings WHERE ts >= $1 AND ts < $2 ORDER BY 1, 2, 3",
            ms_to_datetime(since_ms),
            ms_to_datetime(until_ms),
        )
        return [(r["device_id"], r["metric"], datetime_to_ms(r["bucket"])) for r in records]

    async def recompute_tier(self, name: str, buckets: Iterable[tuple[str, str, int]]) -> int:
        """Recompute the given (device_id, metric, any ms in the bucket) buckets of the hourly
        or daily tier from the tier below; returns the rows written (unchanged ones are left
        alone and not counted)."""
        t = _coarse(name)
        wanted = tiers.coarser_buckets(buckets, t)
        if not wanted:
            return 0
        status = await self._pool.execute(
            _RECOMPUTE_TIER.format(table=t.table, source=t.source),
            [d for d, _, _ in wanted],
            [m for _, m, _ in wanted],
            [ms_to_datetime(ms) for _, _, ms in wanted],
            timedelta(milliseconds=t.width_ms),
        )
        return _status_count(status)

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        """Recompute every bucket of the hourly or daily tier in ``[since_ms, until_ms)``,
        widened to whole buckets, from the tier below, in one statement. Returns the rows
        written."""
        t = _coarse(name)
        start, end = t.bucket(since_ms), bucket_ceil(until_ms, t.width_ms)
        if start >= end:
            return 0
        status = await self._pool.execute(
            _REBUILD_TIER.format(table=t.table, source=t.source),
            ms_to_datetime(start),
            ms_to_datetime(end),
            timedelta(milliseconds=t.width_ms),
        )
        return _status_count(status)

    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]:
        """Delete the rows of each tier named in ``retention_days`` whose bucket starts before
        the UTC day that many days ago; rows deleted per tier."""
        deleted = {}
        for name, days in retention_days.items():
            table = tiers.tier(name).table
            cutoff = tiers.retention_cutoff_ms(now_ms, days)
            status = await self._pool.execute(
                f"DELETE FROM {table} WHERE bucket < $1", ms_to_datetime(cutoff)
            )
            deleted[name] = _status_count(status)
        return deleted

    # --- alerts ---------------------------------------------------------------------------

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        """Persist a rule's transition. ``raised`` opens an alert, or counts one more occurrence
        of the open one for the same (device or gateway, rule); ``updated`` and ``cleared``
        change the open one, and return None when there is none. A ``raised`` or ``updated``
        no newer than the open alert's last update (a replay) leaves it as it is. A new alert,
        a rise to critical and a clear put their notification into the outbox in the same
        transaction."""
        key = (t.device_id, t.gateway_id, t.rule)
        ts = ms_to_datetime(t.ts)
        args: tuple[object, ...]
        if t.kind == "raised":
            sql, args = _RAISE_ALERT, (*key, t.severity, t.metric, t.value, t.message, ts)
        elif t.kind == "updated":
            sql, args = _UPDATE_ALERT, (*key, t.severity, t.metric, t.value, t.message, ts)
        elif t.kind == "cleared":
            sql, args = _CLEAR_ACTIVE_ALERT, (*key, ts)
        else:
            raise ValueError(f"unknown alert transition: {t.kind!r}")
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(sql, *args)
            if record is None and t.kind != "cleared":
                # A replayed or late transition: the open alert, unchanged (None if none).
                record = await conn.fetchrow(f"SELECT * FROM alerts WHERE {_ACTIVE_ALERT}", *key)
            elif record is not None:
                event = _notified(t.kind, record)
                if event is not None:
                    await conn.execute(_OUTBOX, record["id"], event)
        return None if record is None else alert_row(record)

    async def acknowledge_alert(
        self, alert_id: int, by: str, comment: str | None
    ) -> AlertRow | None:
        """Mark an alert (open or cleared) acknowledged by ``by``, now; None if no such id."""
        record = await self._pool.fetchrow(
            "UPDATE alerts SET acknowledged = true, ack_by = $2, ack_at = now(), ack_comment = $3 "
            "WHERE id = $1 RETURNING *",
            alert_id,
            by,
            comment,
        )
        return None if record is None else alert_row(record)

    async def clear_alert(self, alert_id: int, by: str) -> AlertRow | None:
        """Clear an open alert by hand, now; an alert already cleared is returned unchanged.
        None if no such id. A rule that still fires raises a new alert."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                "UPDATE alerts SET state = 'cleared', cleared_at = now(), cleared_by = $2, "
                "updated_at = greatest(updated_at, now()) "
                "WHERE id = $1 AND state = 'active' RETURNING *",
                alert_id,
                by,
            )
            if record is not None:
                await conn.execute(_OUTBOX, alert_id, "resolved")
            else:
                record = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return None if record is None else alert_row(record)

    async def get_alert(self, alert_id: int) -> AlertRow | None:
        record = await self._pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
        return None if record is None else alert_row(record)

    async def list_alerts(self, state: str | None = None, limit: int = 100) -> list[AlertRow]:
        """Newest first; ``state`` is ``active``, ``cleared`` or None for both."""
        if state is not None and state not in ALERT_STATES:
            raise ValueError(f"unknown alert state: {state!r}")
        if not 1 <= limit <= _MAX_ALERTS:
            raise ValueError(f"limit must be within 1..{_MAX_ALERTS}")
        if state is None:
            records = await self._pool.fetch(
                "SELECT * FROM alerts ORDER BY raised_at DESC, id DESC LIMIT $1", limit
            )
        else:
            records = await self._pool.fetch(
                "SELECT * FROM alerts WHERE state = $1 ORDER BY raised_at DESC, id DESC LIMIT $2",
                state,
                limit,
            )
        return [alert_row(r) for r in records]
