"""Arrange what the dashboard shows, through the hub's own code paths: readings written with
`Database.write_readings` and then put on Redis with `LiveStore` exactly as the ingest agent
does, alerts through `Database.apply_alert` and published as the alert agent does, gateway
heartbeats as the status agent stores them, users through the `Accounts` store. The same calls
go to the in-memory hub (`hub.storage.memory_web.MemoryHub`) for the page tests without
services."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from edge_gateway.simulators import FleetSpec, build_fleet
from hub.rules.model import AlertTransition
from hub.storage.alert_events import alert_event, encode_event
from hub.storage.audit_model import Actor
from hub.storage.live import LiveStore
from hub.storage.memory_web import MemoryHub
from hub.storage.model import AlertRow
from hub.storage.postgres import Database
from hub.storage.redis_values import GatewayHealth
from hub.storage.web_ports import Accounts
from hub.web.model import Role
from protocol import EdgeMetrics, NormalisedReading
from protocol.models import ConnectorMetrics
from tests.support.readings import make_reading

PASSWORD = "correct horse battery"  # every test user's
TEST_ACTOR = Actor("test-setup", "pytest")  # who the audit log records for arranged changes


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class HubFeed:
    database: Database | MemoryHub
    live: LiveStore | MemoryHub
    auth: Accounts

    async def add_user(self, name: str, role: Role, password: str = PASSWORD) -> None:
        await self.auth.add_user(name, password, role, actor=TEST_ACTOR)

    async def ingest(self, readings: Sequence[NormalisedReading], *, publish: bool = True) -> None:
        """What the worker does with a batch: PostgreSQL first (the readings, and the device
        online as the alert agent marks it when data arrives), then Redis."""
        await self.database.write_readings(readings)
        newest: dict[str, int] = {}
        for r in readings:
            newest[r.device_id] = max(r.ts, newest.get(r.device_id, r.ts))
        for device_id, ts in newest.items():  # the alert agent's presence tracking
            await self.database.mark_presence(device_id, "online", ts)
        await self.live.update_latest(readings)
        if publish:
            await self.live.publish_readings(readings)

    async def rollups(self, since_ms: int) -> None:
        """Every tier from ``since_ms``, as the worker keeps them: minutes, hours, days."""
        await self.database.rebuild_rollups(since_ms)
        until = now_ms() + 1
        for tier in ("1h", "1d"):
            await self.database.rebuild_tier(tier, since_ms, until)

    async def raise_alert(
        self,
        device_id: str,
        *,
        rule: str = "test.threshold",
        severity: str = "critical",
        metric: str | None = None,
        value: float | None = None,
        message: str = "value out of range",
        ts: int | None = None,
        gateway_id: str = "gw-1",
    ) -> AlertRow:
        """Open an alert and publish it as the alert agent does."""
        transition = AlertTransition(
            kind="raised",
            device_id=device_id,
            gateway_id=gateway_id,
            rule=rule,
            severity=severity,  # type: ignore[arg-type]
            metric=metric,
            value=value,
            message=message,
            ts=now_ms() if ts is None else ts,
        )
        row = await self.database.apply_alert(transition)
        assert row is not None
        await self.live.publish_alert(encode_event(alert_event("raised", row)))
        return row

    async def heartbeat(
        self,
        gateway_id: str,
        *,
        site: str = "site-1",
        buffer_depth: int = 0,
        buffer_bytes: int = 0,
        forwarded_rate: float = 5.0,
        kafka_connected: bool = True,
        received_ts: int | None = None,
        buffer_runway_s: float | None = None,
        connectors: list[ConnectorMetrics] | None = None,
    ) -> None:
        metrics = EdgeMetrics(
            gateway_id=gateway_id,
            site=site,
            ts=now_ms(),
            uptime_s=3600.0,
            buffer_depth=buffer_depth,
            buffer_bytes=buffer_bytes,
            buffer_max_bytes=1 << 30,
            buffer_oldest_age_s=12.0 if buffer_depth else None,
            buffer_runway_s=buffer_runway_s,
            received_total=100_000,
            forwarded_total=100_000 - buffer_depth,
            dropped_total=0,
            dead_lettered_total=0,
            received_rate=forwarded_rate,
            forwarded_rate=forwarded_rate,
            kafka_connected=kafka_connected,
            connectors=connectors,
        )
        await self.live.set_gateway_state(
            GatewayHealth.received(metrics, now_ms() if received_ts is None else received_ts)
        )


reading = functools.partial(make_reading, type="cnc_spindle")


def simulated_history(
    *,
    end_ms: int,
    hours: float,
    step_s: float,
    site: str = "site-1",
    gateway_id: str = "gw-1",
    seed: int = 7,
) -> list[NormalisedReading]:
    """The five simulator types, one device each, with their real models (shifts, load, warm-up,
    noise), one payload every ``step_s`` for the ``hours`` before ``end_ms``."""
    fleet = build_fleet(FleetSpec(site=site, seed=seed, anomaly_probability=0.0))
    start = end_ms - int(hours * 3_600_000)
    step = int(step_s * 1000)
    readings: list[NormalisedReading] = []
    for ts in range(start, end_ms, step):
        for device in fleet:
            payload = device.next_payload(ts)
            if payload is None:
                continue
            readings.append(
                make_reading(
                    device.device_id,
                    payload["ts"],
                    payload["metrics"],
                    seq=payload["seq"],
                    site=site,
                    gateway_id=gateway_id,
                    type=payload["type"],
                )
            )
    return readings
