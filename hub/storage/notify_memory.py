"""`hub.notify.store.NotifyStore` in memory, over a `MemoryDatabase`'s alerts, devices and
outbox; held to the same contract as `hub.storage.notify_postgres.PostgresNotifyStore`
(tests/contracts/notify_storage.py). One event loop and no await between reading and writing
its state, so each method is atomic, as each PostgreSQL transaction is."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

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
    Schedule,
    delivery_key,
    due_actions,
    first_tell,
    group_slot,
    matching_routes,
    next_due_ms,
    resolved_channels,
    start_schedule,
)
from hub.notify.store import Attempt, ClaimedDelivery, ConfigEntry, Outcome
from hub.storage.memory_worker import MemoryDatabase

__all__ = ["MemoryNotifyStore"]

_DETAIL_MAX = 500


@dataclass
class _Delivery:
    id: int
    alert_id: int
    event: str
    channel: str
    route: str
    key: str
    due_ms: int
    created_ms: int
    attempts: int = 0
    lease_until_ms: int | None = None
    state: str = "pending"


class MemoryNotifyStore:
    def __init__(self, db: MemoryDatabase, *, clock_ms: Callable[[], int] | None = None) -> None:
        self._db = db
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._channels: dict[str, ConfigEntry] = {}
        self._routes: dict[str, tuple[int, ConfigEntry]] = {}
        self._routed: set[int] = set()
        self._deliveries: dict[str, _Delivery] = {}  # by idempotency key
        self._schedules: dict[tuple[int, str], Schedule] = {}
        self._groups: dict[tuple[str, str], int] = {}
        self._attempts: list[Attempt] = []
        self._ids = itertools.count(1)

    # -- configuration ----------------------------------------------------------------------

    async def load_config(self) -> NotificationConfig:
        channels = [parse_channel(e.spec) for e in sorted(self._channels.values(), key=_name)]
        names = {c.name for c in channels}
        routes = [
            r
            for r in (parse_route(e.spec) for _, e in sorted(self._routes.values(), key=_order))
            if set(r.channels) <= names
        ]
        return check_config(NotificationConfig(channels=channels, routes=routes))

    async def seed_from_file(self, config: NotificationConfig) -> None:
        channels = {k: v for k, v in self._channels.items() if v.source != "file"}
        routes = {k: v for k, v in self._routes.items() if v[1].source != "file"}
        for c in config.channels:
            channels[c.name] = ConfigEntry(c.name, c.model_dump(mode="json"), "file")
        for i, r in enumerate(config.routes):
            routes[r.name] = (i, ConfigEntry(r.name, r.model_dump(mode="json"), "file"))
        for _, entry in routes.values():
            for j, name in enumerate(entry.spec["channels"]):
                if name not in channels:
                    raise ConfigError(
                        f"routes[{entry.name}].channels[{j}]: unknown channel {name!r}"
                    )
        self._channels, self._routes = channels, routes

    async def channel_entries(self) -> list[ConfigEntry]:
        return sorted(self._channels.values(), key=_name)

    async def route_entries(self) -> list[ConfigEntry]:
        return [e for _, e in sorted(self._routes.values(), key=_order)]

    def _refuse_file_entry(self, entry: ConfigEntry | None) -> None:
        if entry is not None and entry.source == "file":
            raise ConfigError(
                f"name: {entry.name!r} is defined in HUB_NOTIFICATIONS_FILE; edit the file instead"
            )

    async def put_channel(self, channel: Channel) -> bool:
        old = self._channels.get(channel.name)
        self._refuse_file_entry(old)
        self._channels[channel.name] = ConfigEntry(
            channel.name, channel.model_dump(mode="json"), "api"
        )
        return old is None

    async def delete_channel(self, name: str) -> bool:
        self._refuse_file_entry(self._channels.get(name))
        users = sorted(n for n, (_, e) in self._routes.items() if name in e.spec["channels"])
        if users:
            raise ConfigError(f"name: channel {name!r} is used by route(s) {', '.join(users)}")
        return self._channels.pop(name, None) is not None

    async def put_route(self, route: Route) -> bool:
        if not route.name:
            raise ConfigError("name: a route needs a name")
        old = self._routes.get(route.name)
        self._refuse_file_entry(None if old is None else old[1])
        for j, name in enumerate(route.channels):
            if name not in self._channels:
                raise ConfigError(f"channels[{j}]: unknown channel {name!r}")
        position = (
            old[0]
            if old is not None
            else max((p for p, _ in self._routes.values()), default=-1) + 1
        )
        self._routes[route.name] = (
            position,
            ConfigEntry(route.name, route.model_dump(mode="json"), "api"),
        )
        return old is None

    async def delete_route(self, name: str) -> bool:
        old = self._routes.get(name)
        self._refuse_file_entry(None if old is None else old[1])
        return self._routes.pop(name, None) is not None

    # -- delivery ---------------------------------------------------------------------------

    def _facts(self, alert_id: int) -> tuple[AlertFacts, str | None, str | None] | None:
        row = self._db.alerts.get(alert_id)
        if row is None:
            return None
        device = None if row.device_id is None else self._db.devices.get(row.device_id)
        site = None if device is None else device.site
        kind = None if device is None else device.type
        return AlertFacts(row.severity, row.rule, row.device_id, site, kind), site, kind

    def _add(
        self, alert_id: int, event: str, route: Route, channel: str, key: str, now: int
    ) -> None:
        if key in self._deliveries:
            return
        due = group_slot(
            now, self._groups.get((route.name, channel)), round(route.group_window_s * 1000)
        )
        self._groups[(route.name, channel)] = due
        self._deliveries[key] = _Delivery(
            next(self._ids), alert_id, event, channel, route.name, key, due, self._clock_ms()
        )

    async def route_outbox(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        pending = [o for o in self._db.notification_outbox if o[0] not in self._routed][:limit]
        for outbox_id, alert_id, event in pending:
            self._routed.add(outbox_id)
            found = self._facts(alert_id)
            if found is None:
                continue
            what = f"{event}{outbox_id}"
            routes = matching_routes(config, found[0])
            if event == "firing":
                for route, channel in first_tell(routes):
                    key = delivery_key(alert_id, what, channel)
                    self._add(alert_id, "firing", route, channel, key, now_ms)
                for route in routes:
                    self._schedules.setdefault(
                        (alert_id, route.name), start_schedule(route, now_ms)
                    )
                continue
            by_name = {r.name: r for r in config.routes}
            names = {c.name for c in config.channels}
            told: dict[str, Route] = {}
            for (a, route_name), schedule in sorted(self._schedules.items()):
                if a != alert_id:
                    continue
                del self._schedules[(a, route_name)]
                known = by_name.get(route_name)
                for channel in [] if known is None else resolved_channels(known, schedule):
                    if channel in names and known is not None:
                        told.setdefault(channel, known)
            for channel, route in told.items():
                self._add(
                    alert_id,
                    "resolved",
                    route,
                    channel,
                    delivery_key(alert_id, what, channel),
                    now_ms,
                )
        return len(pending)

    async def advance_schedules(self, config: NotificationConfig, now_ms: int, limit: int) -> int:
        made = 0
        by_name = {r.name: r for r in config.routes}
        due = sorted(
            (k for k, s in self._schedules.items() if (next_due_ms(s) or now_ms + 1) <= now_ms),
            key=lambda k: next_due_ms(self._schedules[k]) or 0,
        )[:limit]
        for key in due:
            alert_id, route_name = key
            schedule = self._schedules[key]
            route = by_name.get(route_name)
            row = self._db.alerts.get(alert_id)
            if route is None or row is None:
                self._schedules[key] = replace(
                    schedule, next_escalation_ms=None, next_repeat_ms=None
                )
                continue
            owed, after = due_actions(
                route, schedule, now_ms, active=row.state == "active", acknowledged=row.acknowledged
            )
            for d in owed:
                for channel in d.channels:
                    k = delivery_key(alert_id, f"{route.name}.{d.step}", channel)
                    self._add(alert_id, d.event, route, channel, k, now_ms)
                    made += 1
            self._schedules[key] = after
        return made

    async def claim_due(
        self, now_ms: int, lease_ms: int, limit: int, *, skip_channels: Collection[str] = ()
    ) -> list[ClaimedDelivery]:
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.state == "pending"
                and d.channel not in skip_channels
                and d.due_ms <= now_ms
                and (d.lease_until_ms is None or d.lease_until_ms <= now_ms)
            ),
            key=lambda d: (d.due_ms, d.id),
        )[:limit]
        out = []
        for d in sorted(due, key=lambda d: d.id):
            d.lease_until_ms = now_ms + lease_ms
            d.attempts += 1
            found = self._facts(d.alert_id)
            site, kind = (None, None) if found is None else (found[1], found[2])
            out.append(
                ClaimedDelivery(
                    id=d.id,
                    event=d.event,
                    channel=d.channel,
                    route=d.route,
                    idempotency_key=d.key,
                    attempts=d.attempts,
                    created_at=d.created_ms,
                    alert=self._db.alerts[d.alert_id],
                    site=site,
                    device_type=kind,
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
        detail = None if detail is None else detail[:_DETAIL_MAX]
        for claimed in deliveries:
            self._attempts.append(
                Attempt(
                    next(self._ids), claimed.alert.id, claimed.channel, claimed.event,
                    claimed.idempotency_key, now_ms, outcome, detail,
                )
            )  # fmt: skip
            d = self._deliveries[claimed.idempotency_key]
            d.lease_until_ms = None
            if outcome == "failed" and retry_at_ms is not None:
                d.due_ms = retry_at_ms
            else:
                d.state = outcome

    async def record_test(
        self, channel: str, key: str, outcome: Outcome, detail: str | None
    ) -> None:
        self._attempts.append(
            Attempt(next(self._ids), None, channel, "test", key, self._clock_ms(), outcome, detail)
        )

    async def attempts_for_alert(self, alert_id: int) -> list[Attempt]:
        return sorted(
            (a for a in self._attempts if a.alert_id == alert_id), key=lambda a: (a.at, a.id)
        )


def _name(entry: ConfigEntry) -> str:
    return entry.name


def _order(item: tuple[int, ConfigEntry]) -> tuple[int, str]:
    return item[0], item[1].name
