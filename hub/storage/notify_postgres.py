"""`hub.notify.store.NotifyStore` on PostgreSQL (db/0005_notifications.sql).

Several dispatchers (one per hub worker) share the tables; each step is one transaction that
takes its rows with ``FOR UPDATE SKIP LOCKED``, so two dispatchers never take the same outbox
event, schedule or delivery, and a crash rolls the step back for the next one to redo:

1. `route_outbox`: outbox events -> deliveries (unique idempotency key) and schedules;
2. `advance_schedules`: repeats and escalations due -> deliveries;
3. `claim_due`: deliveries due -> leased to this dispatcher for ``lease_ms``;
4. `record`: the attempt, and the delivery's new state (delivered, failed, or pending again
   with its next retry time).

A dispatcher killed after sending but before `record` leaves its lease to expire: the delivery
is sent again with the same idempotency key, which is how a receiver recognises the repeat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any, Final

import asyncpg

from hub.notify.config import (
    Channel,
    ConfigError,
    NotificationConfig,
    Route,
    check_config,
    parse_channel,
    parse_route,
)
from hub.notify.routing import (
    AlertFacts,
    Due,
    Schedule,
    delivery_key,
    due_actions,
    first_tell,
    group_slot,
    matching_routes,
    resolved_channels,
    start_schedule,
)
from hub.notify.store import Attempt, ClaimedDelivery, ConfigEntry, Outcome, Source
from hub.storage.partitions import datetime_to_ms, ms_to_datetime
from hub.storage.postgres import alert_row

__all__ = ["PostgresNotifyStore"]

log = logging.getLogger(__name__)

_DETAIL_MAX: Final = 500
_ALERT_COLUMNS: Final = "a.*, d.site AS device_site, d.type AS device_type_of"
_ALERT_FROM: Final = "alerts a LEFT JOIN devices d ON d.device_id = a.device_id"


def _ms(value: Any) -> int | None:
    return None if value is None else datetime_to_ms(value)


def _dt(ms: int | None) -> Any:
    return None if ms is None else ms_to_datetime(ms)


def _facts(record: Any) -> AlertFacts:
    return AlertFacts(
        severity=record["severity"],
        rule=record["rule"],
        device_id=record["device_id"],
        site=record["device_site"],
        device_type=record["device_type_of"],
    )


def _schedule(record: Any) -> Schedule:
    return Schedule(
        tiers=record["tiers"],
        repeats=record["repeats"],
        next_escalation_ms=_ms(record["next_escalation_at"]),
        next_repeat_ms=_ms(record["next_repeat_at"]),
    )


class PostgresNotifyStore:
    """Owns no pool: it is given the worker's or the web app's."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, max_size: int = 2
    ) -> tuple[PostgresNotifyStore, asyncpg.Pool]:
        """A store on a pool of its own (the caller closes the pool): sending never waits for
        a connection behind ingest, nor ingest behind it."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=max_size,
            server_settings={"application_name": "iot-hub-notify", "timezone": "UTC"},
        )
        return cls(pool), pool

    # -- configuration ----------------------------------------------------------------------

    async def load_config(self) -> NotificationConfig:
        """What is stored, checked as a whole; an entry that no longer parses is left out and
        logged (stored entries are checked on the way in, so only a model change can do it)."""
        async with self._pool.acquire() as conn:
            return await self._config(conn)

    async def _config(self, conn: asyncpg.Connection) -> NotificationConfig:
        channels: list[Channel] = []
        routes: list[Route] = []
        for r in await conn.fetch("SELECT name, spec FROM notification_channels ORDER BY name"):
            try:
                channels.append(parse_channel(json.loads(r["spec"])))
            except ConfigError as exc:
                log.error(
                    "notification_channel_unusable", extra={"channel": r["name"], "error": str(exc)}
                )
        names = {c.name for c in channels}
        for r in await conn.fetch(
            "SELECT name, spec FROM notification_routes ORDER BY position, name"
        ):
            try:
                route = parse_route(json.loads(r["spec"]))
            except ConfigError as exc:
                log.error(
                    "notification_route_unusable", extra={"route": r["name"], "error": str(exc)}
                )
                continue
            if not set(route.channels) <= names:
                log.error(
                    "notification_route_unusable",
                    extra={"route": r["name"], "error": "unknown channel"},
                )
                continue
            routes.append(route)
        return check_config(NotificationConfig(channels=channels, routes=routes))

    async def seed_from_file(self, config: NotificationConfig) -> None:
        """The file's entries replace every 'file' entry, in one transaction; an API entry of
        the same name becomes the file's. Refused whole (ConfigError) when an API route would
        be left naming a channel the file no longer has."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "LOCK TABLE notification_channels, notification_routes IN EXCLUSIVE MODE"
            )
            await conn.execute("DELETE FROM notification_routes WHERE source = 'file'")
            await conn.execute("DELETE FROM notification_channels WHERE source = 'file'")
            for c in config.channels:
                await self._upsert(
                    conn, "notification_channels", c.name, c.model_dump(mode="json"), "file"
                )
            for i, r in enumerate(config.routes):
                await self._upsert(
                    conn, "notification_routes", r.name, r.model_dump(mode="json"), "file", i
                )
            await self._check_stored(conn)

    async def _check_stored(self, conn: asyncpg.Connection) -> None:
        channels = {r["name"] for r in await conn.fetch("SELECT name FROM notification_channels")}
        for r in await conn.fetch("SELECT name, spec FROM notification_routes ORDER BY position"):
            for j, name in enumerate(json.loads(r["spec"])["channels"]):
                if name not in channels:
                    raise ConfigError(
                        f"routes[{r['name']}].channels[{j}]: unknown channel {name!r}"
                    )

    async def _upsert(
        self,
        conn: asyncpg.Connection,
        table: str,
        name: str,
        spec: dict[str, Any],
        source: Source,
        position: int | None = None,
    ) -> bool:
        # {table} is only ever one of the two fixed names above.
        if table == "notification_routes":
            if position is None:
                position = await conn.fetchval(
                    "SELECT coalesce((SELECT position FROM notification_routes WHERE name = $1),"
                    " (SELECT coalesce(max(position), -1) + 1 FROM notification_routes))",
                    name,
                )
            return bool(
                await conn.fetchval(
                    "INSERT INTO notification_routes (name, position, spec, source) "
                    "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (name) DO UPDATE SET "
                    "position = EXCLUDED.position, spec = EXCLUDED.spec, source = EXCLUDED.source, "
                    "updated_at = now() RETURNING (xmax = 0)",
                    name,
                    position,
                    json.dumps(spec),
                    source,
                )
            )
        return bool(
            await conn.fetchval(
                "INSERT INTO notification_channels (name, spec, source) VALUES ($1, $2::jsonb, $3) "
                "ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, source = EXCLUDED.source, "
                "updated_at = now() RETURNING (xmax = 0)",
                name,
                json.dumps(spec),
                source,
            )
        )

    async def _entries(self, sql: str) -> list[ConfigEntry]:
        return [
            ConfigEntry(r["name"], json.loads(r["spec"]), r["source"])
            for r in await self._pool.fetch(sql)
        ]

    async def channel_entries(self) -> list[ConfigEntry]:
        return await self._entries(
            "SELECT name, spec, source FROM notification_channels ORDER BY name"
        )

    async def route_entries(self) -> list[ConfigEntry]:
        return await self._entries(
            "SELECT name, spec, source FROM notification_routes ORDER BY position, name"
        )

    async def _refuse_file_entry(self, conn: asyncpg.Connection, table: str, name: str) -> None:
        source = await conn.fetchval(f"SELECT source FROM {table} WHERE name = $1 FOR UPDATE", name)
        if source == "file":
            raise ConfigError(
                f"name: {name!r} is defined in HUB_NOTIFICATIONS_FILE; edit the file instead"
            )

    async def put_channel(self, channel: Channel) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._refuse_file_entry(conn, "notification_channels", channel.name)
            return await self._upsert(
                conn, "notification_channels", channel.name, channel.model_dump(mode="json"), "api"
            )

    async def delete_channel(self, name: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE notification_routes IN SHARE ROW EXCLUSIVE MODE")
            await self._refuse_file_entry(conn, "notification_channels", name)
            users = await conn.fetch(
                "SELECT name FROM notification_routes WHERE spec->'channels' ? $1 ORDER BY name",
                name,
            )
            if users:
                routes = ", ".join(r["name"] for r in users)
                raise ConfigError(f"name: channel {name!r} is used by route(s) {routes}")
            status = await conn.execute("DELETE FROM notification_channels WHERE name = $1", name)
            return bool(status != "DELETE 0")

    async def put_route(self, route: Route) -> bool:
        if not route.name:
            raise ConfigError("name: a route needs a name")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE notification_channels IN SHARE MODE")
            await self._refuse_file_entry(conn, "notification_routes", route.name)
            known = {r["name"] for r in await conn.fetch("SELECT name FROM notification_channels")}
            for j, name in enumerate(route.channels):
                if name not in known:
                    raise ConfigError(f"channels[{j}]: unknown channel {name!r}")
            return await self._upsert(
                conn, "notification_routes", route.name, route.model_dump(mode="json"), "api"
            )

    async def delete_route(self, name: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            await self._refuse_file_entry(conn, "notification_routes", name)
            status = await conn.execute("DELETE FROM notification_routes WHERE name = $1", name)
            return bool(status != "DELETE 0")

    # -- delivery ---------------------------------------------------------------------------

    async def _add_delivery(
        self,
        conn: asyncpg.Connection,
        *,
        alert_id: int,
        event: str,
        route: Route,
        channel: str,
        key: str,
        now_ms: int,
    ) -> None:
        """One delivery, due at its group's slot; a key made before is left as it is."""
        exists = await conn.fetchval(
            "SELECT 1 FROM notification_deliveries WHERE idempotency_key = $1", key
        )
        if exists:
            return
        last_due = await conn.fetchval(
            "SELECT last_due_at FROM notification_groups WHERE route = $1 AND channel = $2 "
            "FOR UPDATE",
            route.name,
            channel,
        )
        due = group_slot(now_ms, _ms(last_due), round(route.group_window_s * 1000))
        await conn.execute(
            "INSERT INTO notification_groups (route, channel, last_due_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (route, channel) DO UPDATE SET last_due_at = EXCLUDED.last_due_at",
            route.name,
            channel,
            ms_to_datetime(due),
        )
        await conn.execute(
            "INSERT INTO notification_deliveries "
            "(alert_id, event, channel, route, idempotency_key, due_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
            alert_id,
            event,
            channel,
            route.name,
            key,
            ms_to_datetime(due),
        )

    async def route_outbox(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            events = await conn.fetch(
                "SELECT id, alert_id, event FROM notification_outbox WHERE routed_at IS NULL "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            for e in events:
                alert = await conn.fetchrow(
                    f"SELECT {_ALERT_COLUMNS} FROM {_ALERT_FROM} WHERE a.id = $1", e["alert_id"]
                )
                if alert is not None:
                    await self._route_event(conn, config, e, alert, now_ms)
            if events:
                await conn.execute(
                    "UPDATE notification_outbox SET routed_at = now() WHERE id = any($1::bigint[])",
                    [e["id"] for e in events],
                )
            return len(events)

    async def _route_event(
        self,
        conn: asyncpg.Connection,
        config: NotificationConfig,
        event: Any,
        alert: Any,
        now_ms: int,
    ) -> None:
        alert_id, what = event["alert_id"], f"{event['event']}{event['id']}"
        routes = matching_routes(config, _facts(alert))
        if event["event"] == "firing":
            for route, channel in first_tell(routes):
                await self._add_delivery(
                    conn,
                    alert_id=alert_id,
                    event="firing",
                    route=route,
                    channel=channel,
                    key=delivery_key(alert_id, what, channel),
                    now_ms=now_ms,
                )
            for route in routes:
                s = start_schedule(route, now_ms)
                await conn.execute(
                    "INSERT INTO notification_schedules (alert_id, route, tiers, repeats, "
                    "next_escalation_at, next_repeat_at) VALUES ($1, $2, $3, 0, $4, $5) "
                    "ON CONFLICT (alert_id, route) DO NOTHING",
                    alert_id,
                    route.name,
                    s.tiers,
                    _dt(s.next_escalation_ms),
                    _dt(s.next_repeat_ms),
                )
            return
        # resolved: every channel each route told of the alert, once.
        by_name = {r.name: r for r in config.routes}
        told: dict[str, Route] = {}
        for s in await conn.fetch(
            "DELETE FROM notification_schedules WHERE alert_id = $1 RETURNING *", alert_id
        ):
            known = by_name.get(s["route"])
            if known is None:
                continue
            for channel in resolved_channels(known, _schedule(s)):
                if channel in config_channels(config):
                    told.setdefault(channel, known)
        for channel, route in told.items():
            await self._add_delivery(
                conn,
                alert_id=alert_id,
                event="resolved",
                route=route,
                channel=channel,
                key=delivery_key(alert_id, what, channel),
                now_ms=now_ms,
            )

    async def advance_schedules(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        made = 0
        by_name = {r.name: r for r in config.routes}
        now = ms_to_datetime(now_ms)
        async with self._pool.acquire() as conn, conn.transaction():
            due = await conn.fetch(
                "SELECT s.*, a.state, a.acknowledged FROM notification_schedules s "
                "JOIN alerts a ON a.id = s.alert_id "
                "WHERE least(s.next_escalation_at, s.next_repeat_at) <= $1 "
                "ORDER BY least(s.next_escalation_at, s.next_repeat_at) LIMIT $2 "
                "FOR UPDATE OF s SKIP LOCKED",
                now,
                limit,
            )
            for s in due:
                route = by_name.get(s["route"])
                owed: list[Due] = []
                if route is None:  # the route is gone: nothing more to pace
                    after = Schedule(s["tiers"], s["repeats"], None, None)
                else:
                    owed, after = due_actions(
                        route,
                        _schedule(s),
                        now_ms,
                        active=s["state"] == "active",
                        acknowledged=s["acknowledged"],
                    )
                for d in owed:
                    for channel in d.channels:
                        assert route is not None
                        await self._add_delivery(
                            conn,
                            alert_id=s["alert_id"],
                            event=d.event,
                            route=route,
                            channel=channel,
                            key=delivery_key(s["alert_id"], f"{route.name}.{d.step}", channel),
                            now_ms=now_ms,
                        )
                        made += 1
                await conn.execute(
                    "UPDATE notification_schedules SET tiers = $3, repeats = $4, "
                    "next_escalation_at = $5, next_repeat_at = $6 "
                    "WHERE alert_id = $1 AND route = $2",
                    s["alert_id"],
                    s["route"],
                    after.tiers,
                    after.repeats,
                    _dt(after.next_escalation_ms),
                    _dt(after.next_repeat_ms),
                )
        return made

    async def claim_due(
        self, now_ms: int, lease_ms: int, limit: int, *, skip_channels: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        now = ms_to_datetime(now_ms)
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE notification_deliveries SET lease_until = $2, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM notification_deliveries WHERE state = 'pending' "
                "AND due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) "
                "AND channel <> ALL($4::text[]) "
                "ORDER BY due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
                now,
                now + timedelta(milliseconds=lease_ms),
                limit,
                list(skip_channels),
            )
            if not rows:
                return []
            alerts = {
                r["id"]: r
                for r in await conn.fetch(
                    f"SELECT {_ALERT_COLUMNS} FROM {_ALERT_FROM} WHERE a.id = any($1::bigint[])",
                    list({r["alert_id"] for r in rows}),
                )
            }
        out = []
        for r in sorted(rows, key=lambda r: r["id"]):
            a = alerts[r["alert_id"]]
            out.append(
                ClaimedDelivery(
                    id=r["id"],
                    event=r["event"],
                    channel=r["channel"],
                    route=r["route"],
                    idempotency_key=r["idempotency_key"],
                    attempts=r["attempts"],
                    created_at=datetime_to_ms(r["created_at"]),
                    alert=alert_row(a),
                    site=a["device_site"],
                    device_type=a["device_type_of"],
                )
            )
        return out

    async def record(
        self,
        deliveries: list[ClaimedDelivery],
        outcome: Outcome,
        detail: str | None,
        *,
        now_ms: int,
        retry_at_ms: int | None = None,
    ) -> None:
        if not deliveries:
            return
        detail = None if detail is None else detail[:_DETAIL_MAX]
        ids = [d.id for d in deliveries]
        now = ms_to_datetime(now_ms)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO notification_attempts "
                "(delivery_id, alert_id, channel, event, idempotency_key, at, outcome, detail) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    (d.id, d.alert.id, d.channel, d.event, d.idempotency_key, now, outcome, detail)
                    for d in deliveries
                ],
            )
            if outcome == "failed" and retry_at_ms is not None:
                await conn.execute(
                    "UPDATE notification_deliveries SET due_at = $2, lease_until = NULL "
                    "WHERE id = any($1::bigint[])",
                    ids,
                    ms_to_datetime(retry_at_ms),
                )
            else:
                await conn.execute(
                    "UPDATE notification_deliveries SET state = $2, finished_at = $3, "
                    "lease_until = NULL WHERE id = any($1::bigint[])",
                    ids,
                    outcome,
                    now,
                )

    async def record_test(
        self, channel: str, key: str, outcome: Outcome, detail: str | None
    ) -> None:
        await self._pool.execute(
            "INSERT INTO notification_attempts (channel, event, idempotency_key, outcome, detail) "
            "VALUES ($1, 'test', $2, $3, $4)",
            channel,
            key,
            outcome,
            None if detail is None else detail[:_DETAIL_MAX],
        )

    async def attempts_for_alert(self, alert_id: int) -> list[Attempt]:
        rows = await self._pool.fetch(
            "SELECT * FROM notification_attempts WHERE alert_id = $1 ORDER BY at, id", alert_id
        )
        return [
            Attempt(
                id=r["id"],
                alert_id=r["alert_id"],
                channel=r["channel"],
                event=r["event"],
                idempotency_key=r["idempotency_key"],
                at=datetime_to_ms(r["at"]),
                outcome=r["outcome"],
                detail=r["detail"],
            )
            for r in rows
        ]


def config_channels(config: NotificationConfig) -> set[str]:
    return {c.name for c in config.channels}
