"""What the dashboard and the API read, from PostgreSQL for the record and Redis for what is live:
the `ReadModel` port's real adapter (`PostgresReadModel`), and the Redis publisher of alert
events (`RedisAlertEvents`).

Every query is parameterised. Redis failures degrade (no latest values, no gateways) and never
raise: the dashboard stays useful with PostgreSQL alone. A list reads Redis in one pipelined
round trip for the whole page, never one per device.

Series: a range scan of `readings`' primary key within the day partitions the range touches, or
of one rollup tier's (`readings_1m`, `readings_1h`, `readings_1d`), as `hub.storage.series`
decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from hub.storage.live import REDIS_ERRORS, describe
from hub.storage.partitions import datetime_to_ms, ms_to_datetime

# The adapter's own row mapping, so alerts read here can never drift from those it returns.
from hub.storage.postgres import alert_row
from hub.storage.redis_keys import ALERTS_CHANNEL, GATEWAYS_KEY, latest_key, text
from hub.storage.redis_values import LatestValues, decode_gateway_health, decode_latest
from hub.storage.series import RollupRow, read_series
from hub.storage.tiers import TIERS, Tier
from hub.storage.web_model import (
    AlertFilter,
    AlertRow,
    DeviceFilter,
    DeviceView,
    GatewayView,
    Page,
    Series,
)

__all__ = [
    "MAX_MARKERS",
    "PoolHandle",
    "PostgresReadModel",
    "RedisAlertEvents",
    "connect_pool",
    "parse_gateway",
    "redis_client",
]

# The name its log lines have always carried (the module was hub/web/data.py).
log = logging.getLogger("hub.web.data")

MAX_MARKERS: Final = 1000
_PING_TIMEOUT_S: Final = 2.0

# Active alerts per device through the partial unique index on open alerts, whose leading
# column is coalesce(device_id, '').
_DEVICE_COLUMNS = """
d.device_id, d.site, d.type, d.gateway_id, d.state, d.last_seen, d.metrics,
a.active_alerts, a.worst_severity
FROM devices d
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS active_alerts,
           CASE WHEN bool_or(severity = 'critical') THEN 'critical'
                WHEN count(*) > 0 THEN 'warning' END AS worst_severity
    FROM alerts
    WHERE coalesce(device_id, '') = d.device_id AND state = 'active'
) a
"""
_DEVICE_ONE = f"SELECT {_DEVICE_COLUMNS} WHERE d.device_id = $1"

# Epoch ms computed by the server: exact (extract() is numeric) and cheaper than converting
# thousands of datetimes in Python.
_EPOCH_MS = "(extract(epoch FROM {col}) * 1000)::bigint"
_RAW = f"""
SELECT {_EPOCH_MS.format(col="ts")} AS ts, value
FROM readings
WHERE device_id = $1 AND metric = $2 AND ts >= $3 AND ts < $4
ORDER BY ts
LIMIT $5
"""
# One query per tier, over its fixed table name (hub.storage.tiers.TIERS).
_ROLLUPS: Final = {
    t.name: f"""
SELECT {_EPOCH_MS.format(col="bucket")} AS ts, min, max
FROM {t.table}
WHERE device_id = $1 AND metric = $2 AND bucket >= $3 AND bucket < $4
ORDER BY bucket
"""
    for t in TIERS
}

# A filter adds only the conditions it sets, so that the planner sees plain predicates and
# can pick the matching index (a generic "$1 IS NULL OR col = $1" defeats that).
_ALERT_STATUS: Final = {
    "active": "state = 'active'",
    "cleared": "state = 'cleared'",
    "unacknowledged": "NOT acknowledged",
    "all": None,
}
_MARKERS = """
SELECT * FROM alerts
WHERE device_id = $1 AND raised_at < $3 AND (cleared_at IS NULL OR cleared_at >= $2)
ORDER BY raised_at DESC, id DESC LIMIT $4
"""


async def connect_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """The web process's pool: shared by `PostgresReadModel`, `PostgresAccounts`,
    `PostgresAuditLog` and the alert methods of `hub.storage.postgres.Database` (which takes a
    pool)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"application_name": "iot-hub-web", "timezone": "UTC"},
    )
    return pool


class PoolHandle:
    """The web process's pool (`connect_pool`) before it exists: the stores are built with the
    app, outside any event loop, and use the pool once `open` has connected it (at the app's
    startup). Every pool method is the pool's own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await connect_pool(self._dsn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def __getattr__(self, name: str) -> Any:
        if self._pool is None:
            raise RuntimeError("the web app's database pool is not open yet")
        return getattr(self._pool, name)


def redis_client(url: str, *, timeout_s: float = 2.0) -> Redis:
    """For reads and publishes: short timeouts and one quick retry (as the worker's), so a page
    waits seconds at worst, not redis-py's default ten retries, while Redis is away."""
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), retries=1),
        health_check_interval=30,
    )


def parse_gateway(raw: bytes | str, now_ms: int, offline_after_ms: float) -> GatewayView | None:
    """One `iot:gateways` entry as the page shows it, or None if unreadable."""
    health = decode_gateway_health(raw)
    if health is None:
        return None
    online = now_ms - health.received_ts <= offline_after_ms
    return GatewayView.of(health, "online" if online else "offline")


def gateway_views(
    entries: dict[Any, Any], now_ms: int, offline_after_ms: float
) -> list[GatewayView]:
    """The readable entries of `iot:gateways` (field -> value) by id; an unreadable one is
    logged and left out."""
    views = []
    for key, value in entries.items():
        view = parse_gateway(value, now_ms, offline_after_ms)
        if view is None:
            log.warning("gateway_entry_unreadable", extra={"gateway_id": text(key)})
            continue
        views.append(view)
    return sorted(views, key=lambda g: g.gateway_id)


class _Where:
    """Conditions with numbered parameters ($1, $2...): values are always bound, never spliced;
    only the fixed templates of this module become SQL text."""

    def __init__(self) -> None:
        self._clauses: list[str] = []
        self.args: list[object] = []
        self._filters = 0

    def add(self, template: str, value: object | None) -> None:
        """``template`` with ``{}`` for the parameter, unless ``value`` is None (no filter)."""
        if value is not None:
            self._clauses.append(template.format(self.param(value)))
            self._filters = len(self.args)

    def add_sql(self, condition: str | None) -> None:
        if condition is not None:
            self._clauses.append(condition)

    def param(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    @property
    def sql(self) -> str:
        return " AND ".join(self._clauses) or "true"

    @property
    def filter_args(self) -> list[object]:
        """The arguments of the conditions alone (without LIMIT and OFFSET)."""
        return self.args[: self._filters]


class PostgresReadModel:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        gateway_offline_after_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._gateway_offline_after_ms = gateway_offline_after_s * 1000
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _page(
        self, rows_from: str, count_from: str, order_by: str, where: _Where, limit: int, offset: int
    ) -> tuple[list[asyncpg.Record], int]:
        """One page of ``SELECT {rows_from} WHERE ... ORDER BY {order_by}``, and how many rows
        match over all pages (``SELECT count(*) FROM {count_from} WHERE ...``, skipped when the
        whole result is on this page)."""
        page_sql = (
            f"SELECT {rows_from} WHERE {where.sql} ORDER BY {order_by} "
            f"LIMIT {where.param(limit)} OFFSET {where.param(offset)}"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(page_sql, *where.args)
            if offset == 0 and len(rows) < limit:
                return rows, len(rows)
            count_sql = f"SELECT count(*) FROM {count_from} WHERE {where.sql}"
            total: int = await conn.fetchval(count_sql, *where.filter_args)
        return rows, total

    # -- devices -------------------------------------------------------------------------------

    async def devices(self, f: DeviceFilter) -> Page[DeviceView]:
        f.validate()
        where = _Where()
        where.add("d.site = {}", f.site)
        where.add("d.type = {}", f.type)
        where.add("d.state = {}", f.state)
        where.add("strpos(lower(d.device_id), lower({})) > 0", f.search or None)
        where.add(
            "d.device_id = ANY({}::text[])", None if f.device_ids is None else sorted(f.device_ids)
        )
        rows, total = await self._page(
            _DEVICE_COLUMNS, "devices d", "d.device_id", where, f.limit, f.offset
        )
        latest = await self._latest([r["device_id"] for r in rows])
        items = [_device_view(r, latest.get(r["device_id"])) for r in rows]
        return Page(items=items, total=total, limit=f.limit, offset=f.offset)

    async def device(self, device_id: str) -> DeviceView | None:
        row = await self._pool.fetchrow(_DEVICE_ONE, device_id)
        if row is None:
            return None
        latest = await self._latest([device_id])
        return _device_view(row, latest.get(device_id))

    async def facets(self) -> tuple[list[str], list[str]]:
        """Distinct sites and types of the known devices, sorted."""
        async with self._pool.acquire() as conn:
            sites = await conn.fetch("SELECT DISTINCT site FROM devices ORDER BY 1")
            types = await conn.fetch(
                "SELECT DISTINCT type FROM devices WHERE type IS NOT NULL ORDER BY 1"
            )
        return [r[0] for r in sites], [r[0] for r in types]

    async def _latest(self, device_ids: Sequence[str]) -> dict[str, LatestValues]:
        if not device_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for device_id in device_ids:
                    pipe.hgetall(latest_key(device_id))
                results = await pipe.execute()
        except REDIS_ERRORS as exc:
            redis_degraded("latest", exc)
            return {}
        return {d: decode_latest(fields) for d, fields in zip(device_ids, results, strict=True)}

    # -- gateways ------------------------------------------------------------------------------

    async def gateways(self) -> list[GatewayView]:
        """Every gateway the hub has heard from, by id; [] while Redis is away or refuses."""
        try:
            entries = await self._redis.hgetall(GATEWAYS_KEY)
        except REDIS_ERRORS as exc:
            redis_degraded("gateways", exc)
            return []
        return gateway_views(entries, self._now_ms(), self._gateway_offline_after_ms)

    # -- series --------------------------------------------------------------------------------

    async def series(
        self, device_id: str, metric: str, start: int, end: int, max_points: int
    ) -> Series:
        """Readings of one metric in ``[start, end)``, at most ``max_points``
        (`hub.storage.series`), on one connection."""
        async with self._pool.acquire() as conn:

            async def raw(lo: int, hi: int, limit: int) -> tuple[list[int], list[float]]:
                rows = await conn.fetch(
                    _RAW, device_id, metric, ms_to_datetime(lo), ms_to_datetime(hi), limit
                )
                return [r["ts"] for r in rows], [r["value"] for r in rows]

            async def rollups(tier: Tier, lo: int, hi: int) -> Sequence[RollupRow]:
                rows: list[RollupRow] = await conn.fetch(
                    _ROLLUPS[tier.name], device_id, metric, ms_to_datetime(lo), ms_to_datetime(hi)
                )
                return rows

            return await read_series(
                device_id, metric, start, end, max_points, raw=raw, rollups=rollups
            )

    # -- alerts --------------------------------------------------------------------------------

    async def alerts(self, f: AlertFilter) -> Page[AlertRow]:
        """Newest first. ``unacknowledged``: not acknowledged yet, whether still active or
        cleared meanwhile (an operator should still see what happened)."""
        f.validate()
        where = _Where()
        where.add_sql(_ALERT_STATUS[f.status])
        where.add("severity = {}", f.severity)
        where.add("device_id = {}", f.device_id)
        rows, total = await self._page(
            "* FROM alerts", "alerts", "raised_at DESC, id DESC", where, f.limit, f.offset
        )
        items = [alert_row(r) for r in rows]
        return Page(items=items, total=total, limit=f.limit, offset=f.offset)

    async def alert_markers(self, device_id: str, start: int, end: int) -> list[AlertRow]:
        """The device's alerts open at any time in ``[start, end)``, newest first."""
        rows = await self._pool.fetch(
            _MARKERS, device_id, ms_to_datetime(start), ms_to_datetime(end), MAX_MARKERS
        )
        return [alert_row(r) for r in rows]

    # -- health --------------------------------------------------------------------------------

    async def ping(self) -> dict[str, bool]:
        """Reachability of each store, for readiness; each check bounded by a timeout."""
        postgres, redis = await asyncio.gather(self._ping_postgres(), self._ping_redis())
        return {"postgres": postgres, "redis": redis}

    async def _ping_postgres(self) -> bool:
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S):
                await self._pool.fetchval("SELECT 1")
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def _ping_redis(self) -> bool:
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S):
                await self._redis.ping()
        except (TimeoutError, *REDIS_ERRORS):
            return False
        return True


class RedisAlertEvents:
    """Alert events on `iot:live:alerts`, the channel the worker publishes them on; best effort
    (a refusal or an outage is logged, never raised: the change is in PostgreSQL already)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish_alert(self, data: bytes) -> None:
        try:
            await self._redis.publish(ALERTS_CHANNEL, data)
        except REDIS_ERRORS as exc:
            redis_degraded("publish_alert", exc)


def redis_degraded(op: str, exc: BaseException) -> None:
    # Redis unreachable or refusing (OOM, READONLY, NOPERM): either way the page goes without.
    refused = isinstance(exc, redis_errors.ResponseError)
    event = "redis_rejected" if refused else "redis_unavailable"
    log.warning(event, extra={"op": op, "error": describe(exc)})


def _ms(value: Any) -> int | None:
    return None if value is None else datetime_to_ms(value)


def _device_view(row: Any, latest: LatestValues | None) -> DeviceView:
    return DeviceView(
        device_id=row["device_id"],
        site=row["site"],
        type=row["type"],
        gateway_id=row["gateway_id"],
        state=row["state"],
        last_seen=_ms(row["last_seen"]),
        metrics=tuple(sorted(row["metrics"])),
        latest={} if latest is None else latest.metrics,
        latest_ts=None if latest is None else latest.ts,
        active_alerts=row["active_alerts"],
        worst_severity=row["worst_severity"],
    )
