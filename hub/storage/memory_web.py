"""In-memory adapters of the web process's storage ports (`hub.storage.web_ports`), held to the
same contract as the PostgreSQL and Redis ones (tests/contracts/web_storage.py): for tests of
the pages, the API and the services that need no running services.

`MemoryHub` is what the worker writes and the dashboard reads: readings, rollups, devices and
alerts (the `Database` methods the worker calls, kept by a `hub.storage.memory_worker.
MemoryDatabase` that the worker's side may share), latest values and gateways (the `LiveStore`
methods), the live channels (`subscribe`), and the `ReadModel`, `AlertWrites` and `AlertEvents`
ports. `MemoryAccounts` and `MemoryAuditLog` are the `Accounts` and `AuditTrail` ports.
Everything here runs on one event loop; no method awaits between reading and writing its state,
so each is atomic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from hub.storage.audit_log import log_event
from hub.storage.audit_model import (
    Actor,
    AuditEntry,
    AuditEvent,
    AuditFilter,
    token_created_event,
    token_revoked_event,
    user_removed_event,
    user_saved_event,
)
from hub.storage.credentials import (
    LAST_USED_RESOLUTION_S,
    TOKEN_PREFIX,
    PasswordCheck,
    TokenCheck,
    TokenInfo,
    check_new_token,
    check_new_user,
    dummy_hash,
    hash_password,
    new_session_id,
    new_token,
    session_hash,
    token_hash,
    token_principal,
    verify_password,
)
from hub.storage.live import merge_latest
from hub.storage.live_messages import LiveReading, encode_readings_message
from hub.storage.memory_rollups import TierRows
from hub.storage.memory_worker import DeviceRecord, MemoryDatabase
from hub.storage.model import AlertRow, AlertTransitionLike, WriteResult
from hub.storage.read_model import MAX_MARKERS, gateway_views
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL
from hub.storage.redis_values import (
    GatewayHealth,
    LatestValues,
    decode_latest,
    encode_gateway_health,
)
from hub.storage.series import RollupRow, read_series
from hub.storage.tiers import Tier
from hub.storage.web_model import (
    AlertFilter,
    DeviceFilter,
    DeviceView,
    GatewayView,
    Page,
    Principal,
    Role,
    Series,
    check_role,
)
from protocol import NormalisedReading

__all__ = ["MemoryAccounts", "MemoryAuditLog", "MemoryHub"]

Listener = Callable[[str, bytes], None]


class MemoryHub:
    """The hub's records and live values in memory (see the module docstring)."""

    def __init__(
        self,
        *,
        gateway_offline_after_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        database: MemoryDatabase | None = None,
    ) -> None:
        self._clock = clock
        self._gateway_offline_after_ms = gateway_offline_after_s * 1000
        # What the worker writes, shared with whoever holds the same `MemoryDatabase`.
        self.database = database or MemoryDatabase(clock=clock)
        self._latest: dict[str, dict[str, str]] = {}
        self._gateways: dict[str, str] = {}
        self._listeners: list[Listener] = []

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- what the worker writes (as `Database` and `LiveStore`) -------------------------------

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult:
        return await self.database.write_readings(readings)

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        return await self.database.mark_presence(device_id, state, ts_ms)

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        return await self.database.rebuild_rollups(since_ms, until_ms)

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        return await self.database.rebuild_tier(name, since_ms, until_ms)

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        return await self.database.apply_alert(t)

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool:
        for device_id, device in merge_latest(readings).items():
            fields = self._latest.setdefault(device_id, {})
            fields.update({str(k): str(v) for k, v in device.fields().items()})
        return True

    async def set_gateway_state(self, health: GatewayHealth) -> bool:
        self._gateways[health.gateway_id] = encode_gateway_health(health)
        return True

    # -- the live channels ----------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(channel, data)`` for every message published from now on; returns the
        function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _publish(self, channel: str, data: bytes) -> None:
        for listener in list(self._listeners):
            listener(channel, data)

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool:
        if readings:
            message = encode_readings_message(LiveReading.of(r) for r in readings)
            self._publish(
                READINGS_CHANNEL, message.encode() if isinstance(message, str) else message
            )
        return True

    async def publish_alert(self, data: str | bytes) -> None:
        """The `AlertEvents` port, and `LiveStore.publish_alert` for the worker's side."""
        self._publish(ALERTS_CHANNEL, data.encode() if isinstance(data, str) else data)

    # -- ReadModel ----------------------------------------------------------------------------

    async def devices(self, f: DeviceFilter) -> Page[DeviceView]:
        f.validate()
        search = (f.search or "").lower()
        matching = [
            d
            for _, d in sorted(self.database.devices.items())
            if (f.site is None or d.site == f.site)
            and (f.type is None or d.type == f.type)
            and (f.state is None or d.state == f.state)
            and search in d.device_id.lower()
            and (f.device_ids is None or d.device_id in f.device_ids)
        ]
        items = [self._view(d) for d in matching[f.offset : f.offset + f.limit]]
        return Page(items=items, total=len(matching), limit=f.limit, offset=f.offset)

    async def device(self, device_id: str) -> DeviceView | None:
        d = self.database.devices.get(device_id)
        return None if d is None else self._view(d)

    def _view(self, d: DeviceRecord) -> DeviceView:
        active = [
            a
            for a in self.database.alerts.values()
            if a.device_id == d.device_id and a.state == "active"
        ]
        worst: Literal["warning", "critical"] | None = None
        if active:
            worst = "critical" if any(a.severity == "critical" for a in active) else "warning"
        fields = self._latest.get(d.device_id)
        latest: LatestValues | None = None if fields is None else decode_latest(fields)
        return DeviceView(
            device_id=d.device_id,
            site=d.site,
            type=d.type,
            gateway_id=d.gateway_id,
            state=d.state,
            last_seen=d.last_seen,
            metrics=tuple(sorted(d.metrics)),
            latest={} if latest is None else latest.metrics,
            latest_ts=None if latest is None else latest.ts,
            active_alerts=len(active),
            worst_severity=worst,
        )

    async def facets(self) -> tuple[list[str], list[str]]:
        devices = self.database.devices.values()
        return (
            sorted({d.site for d in devices}),
            sorted({d.type for d in devices if d.type is not None}),
        )

    async def gateways(self) -> list[GatewayView]:
        return gateway_views(self._gateways, self._now_ms(), self._gateway_offline_after_ms)

    async def series(
        self, device_id: str, metric: str, start: int, end: int, max_points: int
    ) -> Series:
        readings = self.database.readings.get((device_id, metric), {})
        tiers: dict[str, TierRows] = {"1m": self.database.rollups, **self.database.tiers}

        async def raw(lo: int, hi: int, limit: int) -> tuple[list[int], list[float]]:
            points = sorted((ts, v) for ts, v in readings.items() if lo <= ts < hi)[:limit]
            return [ts for ts, _ in points], [v for _, v in points]

        async def buckets(tier: Tier, lo: int, hi: int) -> Sequence[RollupRow]:
            rows = tiers[tier.name].of(device_id, metric)
            return [
                {"ts": bucket, "min": r.min, "max": r.max}
                for bucket, r in sorted(rows.items())
                if lo <= bucket < hi
            ]

        return await read_series(
            device_id, metric, start, end, max_points, raw=raw, rollups=buckets
        )

    async def alerts(self, f: AlertFilter) -> Page[AlertRow]:
        f.validate()
        matching = [
            a
            for a in self._newest_first(self.database.alerts.values())
            if _status_matches(a, f.status)
            and (f.severity is None or a.severity == f.severity)
            and (f.device_id is None or a.device_id == f.device_id)
        ]
        items = matching[f.offset : f.offset + f.limit]
        return Page(items=items, total=len(matching), limit=f.limit, offset=f.offset)

    async def alert_markers(self, device_id: str, start: int, end: int) -> list[AlertRow]:
        rows = [
            a
            for a in self.database.alerts.values()
            if a.device_id == device_id
            and a.raised_at < end
            and (a.cleared_at is None or a.cleared_at >= start)
        ]
        return self._newest_first(rows)[:MAX_MARKERS]

    @staticmethod
    def _newest_first(rows: Iterable[AlertRow]) -> list[AlertRow]:
        return sorted(rows, key=lambda a: (a.raised_at, a.id), reverse=True)

    async def ping(self) -> dict[str, bool]:
        return {"postgres": True, "redis": True}

    # -- AlertWrites ----------------------------------------------------------------------------

    async def acknowledge_alert(
        self, alert_id: int, by: str, comment: str | None
    ) -> AlertRow | None:
        row = self.database.alerts.get(alert_id)
        if row is None:
            return None
        return self.database.put_alert(
            row, acknowledged=True, ack_by=by, ack_at=self._now_ms(), ack_comment=comment
        )

    async def clear_alert(self, alert_id: int, by: str) -> AlertRow | None:
        row = self.database.alerts.get(alert_id)
        if row is None or row.state != "active":
            return row
        now = self._now_ms()
        self.database.add_to_outbox(row.id, "resolved")
        return self.database.put_alert(
            row, state="cleared", cleared_at=now, cleared_by=by, updated_at=max(row.updated_at, now)
        )

    async def get_alert(self, alert_id: int) -> AlertRow | None:
        return self.database.alerts.get(alert_id)


def _status_matches(a: AlertRow, status: str) -> bool:
    if status == "active":
        return a.state == "active"
    if status == "cleared":
        return a.state == "cleared"
    if status == "unacknowledged":
        return not a.acknowledged
    return True


# -- the audit trail -----------------------------------------------------------------------------


class MemoryAuditLog:
    """The `AuditTrail` port: an append-only list; every event logged as the real one logs it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: list[AuditEntry] = []

    async def record(self, event: AuditEvent) -> None:
        self.append(event)

    def append(self, event: AuditEvent) -> None:
        actor, action, _, client, target, details = event.row()
        self._entries.append(
            AuditEntry(
                id=len(self._entries) + 1,
                at=int(self._clock() * 1000),
                actor=actor,
                action=action,
                outcome=event.outcome,
                client=client,
                target=target,
                details=dict(details),
            )
        )
        log_event(event)

    async def entries(self, f: AuditFilter) -> Page[AuditEntry]:
        f.validate()
        action = f.action
        matching = [
            e
            for e in reversed(self._entries)  # newest first: ids grow with time
            if (f.since is None or e.at >= f.since)
            and (f.until is None or e.at < f.until)
            and (f.actor is None or e.actor == f.actor)
            and (
                action is None
                or (e.action.startswith(action) if action.endswith(".") else e.action == action)
            )
            and (f.outcome is None or e.outcome == f.outcome)
        ]
        items = matching[f.offset : f.offset + f.limit]
        return Page(items=items, total=len(matching), limit=f.limit, offset=f.offset)


# -- accounts ------------------------------------------------------------------------------------


@dataclass
class _User:
    password_hash: str
    role: Role


@dataclass
class _Session:
    user: str
    client: str | None
    expires_at: float  # epoch s


@dataclass
class _Token:
    name: str
    token_hash: str
    role: Role
    created_at: int
    expires_at: int | None
    last_used_at: int | None = None
    revoked_at: int | None = None


class MemoryAccounts:
    """The `Accounts` port in memory; changes are audited into ``audit`` (a `MemoryAuditLog`)."""

    def __init__(self, audit: MemoryAuditLog, clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._clock = clock
        self._users: dict[str, _User] = {}
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, _Token] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, name: str, password: str, role: Role, *, actor: Actor) -> bool:
        check_new_user(name, password, role)
        hashed = await asyncio.to_thread(hash_password, password)
        before = self._users.get(name)
        same, ended = False, 0
        if before is not None:
            same = await asyncio.to_thread(verify_password, password, before.password_hash)
        # Nothing awaited from here on: the change and its audit event go together.
        before = self._users.get(name)
        if before is not None and not same:
            ended = self._end_user_sessions(name)
        self._users[name] = _User(hashed, role)
        self._audit.append(
            user_saved_event(
                actor,
                name,
                role,
                before_role=None if before is None else before.role,
                password_changed=not same,
                sessions_ended=ended,
            )
        )
        return before is None

    async def check_password(self, name: str, password: str) -> PasswordCheck:
        user = self._users.get(name)
        hashed = dummy_hash() if user is None else user.password_hash
        ok = await asyncio.to_thread(verify_password, password, hashed)
        user = self._users.get(name)
        if user is None:
            return PasswordCheck(None, "unknown_user")
        if not ok:
            return PasswordCheck(None, "wrong_password")
        return PasswordCheck(Principal(name=name, role=user.role))

    async def authenticate(self, name: str, password: str) -> Principal | None:
        return (await self.check_password(name, password)).principal

    async def get_user(self, name: str) -> Principal | None:
        user = self._users.get(name)
        return None if user is None else Principal(name=name, role=user.role)

    async def delete_user(self, name: str, *, actor: Actor) -> bool:
        user = self._users.pop(name, None)
        if user is None:
            return False
        ended = self._end_user_sessions(name)
        self._audit.append(user_removed_event(actor, name, user.role, ended))
        return True

    async def list_users(self) -> list[Principal]:
        return [Principal(name=n, role=u.role) for n, u in sorted(self._users.items())]

    # -- dashboard sessions --------------------------------------------------------------------

    async def create_session(self, principal: Principal, hours: float, client: str | None) -> str:
        now = self._clock()
        self._sessions = {h: s for h, s in self._sessions.items() if s.expires_at >= now}
        session_id = new_session_id()
        self._sessions[session_hash(session_id)] = _Session(
            principal.name, client, now + hours * 3600.0
        )
        return session_id

    async def session_user(self, session_id: str) -> Principal | None:
        session = self._sessions.get(session_hash(session_id))
        if session is None or session.expires_at <= self._clock():
            return None
        return await self.get_user(session.user)

    async def end_session(self, session_id: str) -> bool:
        return self._sessions.pop(session_hash(session_id), None) is not None

    async def end_user_sessions(self, name: str) -> int:
        return self._end_user_sessions(name)

    def _end_user_sessions(self, name: str) -> int:
        mine = [h for h, s in self._sessions.items() if s.user == name]
        for h in mine:
            del self._sessions[h]
        return len(mine)

    # -- API tokens ----------------------------------------------------------------------------

    async def create_token(
        self, name: str, role: Role, *, actor: Actor, expires_in_s: float | None = None
    ) -> str:
        check_new_token(name, role, expires_in_s)
        now = self._now_ms()
        existing = self._tokens.get(name)
        if existing is not None and existing.revoked_at is None and not _expired(existing, now):
            raise ValueError(f"an active token named {name!r} exists; revoke it first")
        token = new_token()
        expires_at = None if expires_in_s is None else now + round(expires_in_s * 1000)
        self._tokens[name] = _Token(name, token_hash(token), check_role(role), now, expires_at)
        self._audit.append(token_created_event(actor, name, role, expires_at))
        return token

    async def check_token(self, token: str) -> TokenCheck:
        if not token.startswith(TOKEN_PREFIX):
            return TokenCheck(None)
        hashed = token_hash(token)
        found = next(
            (t for t in self._tokens.values() if t.token_hash == hashed and t.revoked_at is None),
            None,
        )
        if found is None:
            return TokenCheck(None)
        now = self._now_ms()
        if _expired(found, now):
            assert found.expires_at is not None
            return TokenCheck(None, expired_at=found.expires_at)
        if found.last_used_at is None or found.last_used_at < now - LAST_USED_RESOLUTION_S * 1000:
            found.last_used_at = now
        return TokenCheck(token_principal(found.name, found.role))

    async def verify_token(self, token: str) -> Principal | None:
        return (await self.check_token(token)).principal

    async def revoke_token(self, name: str, *, actor: Actor) -> bool:
        found = self._tokens.get(name)
        if found is None or found.revoked_at is not None:
            return False
        found.revoked_at = self._now_ms()
        self._audit.append(token_revoked_event(actor, name, found.role))
        return True

    async def list_tokens(self) -> list[TokenInfo]:
        return [
            TokenInfo(
                name=t.name,
                role=t.role,
                created_at=t.created_at,
                expires_at=t.expires_at,
                last_used_at=t.last_used_at,
                revoked_at=t.revoked_at,
            )
            for _, t in sorted(self._tokens.items())
        ]


def _expired(token: _Token, now_ms: int) -> bool:
    return token.expires_at is not None and token.expires_at <= now_ms
