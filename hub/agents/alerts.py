"""Alerts: one `AlertEngine` per worker process; its transitions persisted, then published.

Every input (a committed batch of readings, a device status, a gateway heartbeat, a clock
tick) goes through `AlertPipeline.feed`, which runs the engine and persists and publishes what
it returns under one lock. The lock is what keeps an alert's life in order: the engine is
synchronous, but persisting is not, and a "cleared" must never overtake its own "raised" (a
tick raising device_offline while a reading clears it). It also gives backpressure: while the
database is away every input waits, as ingest does.

Per transition, in order:

1. `apply_alert` in PostgreSQL (transient errors retried until it succeeds);
2. the resulting row as a lifecycle event on Kafka `iot.alerts` (key: device or gateway id),
   retried like the dead-letter sends;
3. the same event on the Redis channel `iot:live:alerts` (best effort).

A transition that changes nothing in the store (clearing an alert that is not open) publishes
nothing. A replayed "raised" returns the open row unchanged and is published again: consumers
key events by (`id`, `updated_at`).

The engine's state is per process. A device's readings and statuses are keyed by device id,
so all of them reach the one worker that owns its partitions. Gateway heartbeats are keyed by
gateway id and reach the worker owning that partition of `iot.edge-metrics`, which alone raises
and clears `gateway_offline`; every other worker learns of them each second from the shared
view in Redis (`iot:gateways`, `observe_shared_heartbeats`), so it holds back `device_offline`
for its devices of a silent gateway too. With Redis away a worker knows only the heartbeats it
receives itself. After a rebalance (and after start-up, which restores every open alert of the
store) each worker forgets the devices whose partitions it is no longer assigned, and disowns
such gateways (`retain`, `hub.ownership`), so the worker that gave them up neither takes their
silence for an outage nor raises the gateway's alert.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from hub.agents.poison import describe_error
from hub.agents.retry import Retrier
from hub.rules import DEVICE_OFFLINE, AlertEngine, AlertTransition, OpenAlert, RuleSet
from hub.storage.alert_events import alert_event, encode_event, event_key
from hub.storage.model import AlertRow, AlertTransitionLike
from protocol import NormalisedReading

log = logging.getLogger(__name__)

RESTORE_LIMIT: Final = 1000  # Database.list_alerts' maximum


class AlertStore(Protocol):
    """What alerts need from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None: ...

    async def list_alerts(self, state: str | None = None, limit: int = 100) -> list[AlertRow]: ...

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool: ...


class AlertChannel(Protocol):
    """The Redis side (`hub.storage.live.LiveStore`): best effort, never raises for an outage."""

    async def publish_alert(self, event_json: str | bytes) -> bool: ...


class EventProducer(Protocol):
    """Sends one record to `iot.alerts` and returns once Kafka has it."""

    async def send(self, key: bytes | None, value: bytes) -> None: ...


@dataclass
class AlertCounters:
    transitions_total: int = 0
    published_total: int = 0
    db_retries_total: int = 0
    kafka_retries_total: int = 0
    failed_total: int = 0  # transitions skipped: the store or Kafka refused them for good


def presence_change(t: AlertTransition) -> tuple[str, str] | None:
    """(device_id, state) when a device-offline alert says the device's presence changed."""
    if t.rule != DEVICE_OFFLINE or t.device_id is None or t.kind == "updated":
        return None
    return t.device_id, "offline" if t.kind == "raised" else "online"


def open_alerts(rows: Iterable[AlertRow]) -> list[OpenAlert]:
    """Active rows of the store as the engine's `restore` takes them."""
    return [
        OpenAlert(row.device_id, row.gateway_id, row.rule, row.severity)
        for row in rows
        if row.state == "active"
    ]


class RaiseGate(Protocol):
    """Holds back new alerts while a maintenance window suppresses them (`hub.alarms.gate`)."""

    async def holds_back(self, t: AlertTransitionLike) -> str | None:
        """Why ``t`` is not to be raised now (the windows' names), or None."""
        ...


class Ownership(Protocol):
    """Which devices and gateways this worker owns: those whose partitions it is assigned."""

    def owns_device(self, device_id: str) -> bool: ...

    def owns_gateway(self, gateway_id: str) -> bool: ...


class AlertPipeline:
    """The engine and where its transitions go. Construct once per worker process."""

    def __init__(
        self,
        engine: AlertEngine,
        *,
        store: AlertStore,
        channel: AlertChannel,
        producer: EventProducer,
        retrier: Retrier,
        counters: AlertCounters | None = None,
        gate: RaiseGate | None = None,
    ) -> None:
        self.engine = engine
        self._gate = gate
        self._held: set[tuple[str | None, str | None, str]] = set()  # logged once per hold
        self._store = store
        self._channel = channel
        self._producer = producer
        self.counters = counters or AlertCounters()
        self._retrier = retrier
        self._lock = asyncio.Lock()

    async def restore(self, now_ms: int) -> int:
        """Adopt the alerts open in the store, so a restart raises none of them twice."""
        rows = await self._retrier.db(
            functools.partial(self._store.list_alerts, "active", RESTORE_LIMIT),
            what="alerts_restore",
        )
        alerts = open_alerts(rows)
        async with self._lock:
            self.engine.restore(alerts, now_ms=now_ms)
        if len(rows) >= RESTORE_LIMIT:
            log.warning("alerts_restore_truncated", extra={"restored": len(alerts)})
        return len(alerts)

    async def observe_shared_heartbeats(self, heartbeats: Iterable[tuple[str, int]]) -> None:
        """Gateway heartbeats as the group's shared view has them (other workers' included)."""

        def evaluate(engine: AlertEngine) -> list[AlertTransition]:
            return [
                t
                for gateway_id, heard in heartbeats
                for t in engine.observe_heartbeat(gateway_id, heard, shared=True)
            ]

        await self.feed(evaluate)

    async def retain(self, owner: Ownership) -> None:
        """Forget what another worker of the group owns now (after a rebalance, or after
        restoring every open alert of the store)."""
        async with self._lock:
            devices, gateways = self.engine.retain(owner.owns_device, owner.owns_gateway)
        if devices or gateways:
            log.info("alerts_handed_over", extra={"devices": devices, "gateways": gateways})

    async def feed(self, evaluate: Callable[[AlertEngine], Sequence[AlertTransition]]) -> None:
        """Run `evaluate` on the engine, then persist and publish its transitions, in order.
        A transition that fails for a reason a retry cannot outlast is skipped, logged and
        counted: the next ones, and the input that caused them, go on."""
        async with self._lock:
            for transition in evaluate(self.engine):
                try:
                    if not await self._held_back(transition):
                        await self._emit(transition)
                # The poison boundary of alerting (`_emit` waits out outages itself).
                except Exception as exc:  # noqa: BLE001 - logged and counted
                    self.counters.failed_total += 1
                    log.error(
                        "alert_transition_failed",
                        extra={
                            "device_id": transition.device_id,
                            "gateway_id": transition.gateway_id,
                            "rule": transition.rule,
                            "kind": transition.kind,
                            "error": describe_error(exc),
                        },
                    )

    async def observe_readings(
        self, readings: Iterable[NormalisedReading], now_ms: int | None = None
    ) -> None:
        """`now_ms`: the hub's clock as the batch was committed; a device is heard then."""

        def evaluate(engine: AlertEngine) -> list[AlertTransition]:
            if now_ms is not None:
                engine.advance(now_ms)
            return [t for reading in readings for t in engine.observe(reading)]

        await self.feed(evaluate)

    async def tick(self, now_ms: int) -> None:
        await self.feed(lambda engine: engine.tick(now_ms))

    async def _held_back(self, t: AlertTransition) -> bool:
        """A new alert a maintenance window suppresses: not raised, and forgotten by the
        engine, so it is raised on the first sample after the window if it still holds."""
        if self._gate is None:
            return False
        key = (t.device_id, t.gateway_id, t.rule)
        windows = await self._retrier.db(
            functools.partial(self._gate.holds_back, t), what="window_check"
        )
        if windows is None:
            self._held.discard(key)
            return False
        self.engine.forget(t.device_id, t.rule, gateway_id=t.gateway_id)
        if key not in self._held and len(self._held) < RESTORE_LIMIT * 100:
            self._held.add(key)
            log.info(
                "alert_held_back",
                extra={
                    "device_id": t.device_id,
                    "gateway_id": t.gateway_id,
                    "rule": t.rule,
                    "windows": windows,
                },
            )
        return True

    async def replace_rules(self, rules: RuleSet) -> None:
        """New rules in the running engine; alerts of rules that no longer apply clear."""
        await self.feed(lambda engine: engine.replace_rules(rules))

    async def _emit(self, t: AlertTransition) -> None:
        self.counters.transitions_total += 1

        def db_retried() -> None:
            self.counters.db_retries_total += 1

        def kafka_retried() -> None:
            self.counters.kafka_retries_total += 1

        fields: dict[str, object] = {
            "device_id": t.device_id,
            "gateway_id": t.gateway_id,
            "rule": t.rule,
        }
        row = await self._retrier.db(
            functools.partial(self._store.apply_alert, t),
            what="alert_persist",
            on_retry=db_retried,
            extra=fields,
        )
        presence = presence_change(t)
        if presence is not None:
            # Silence is presence too: devices.state follows it, not only the alert.
            await self._retrier.db(
                functools.partial(self._store.mark_presence, *presence, t.ts),
                what="presence_persist",
                on_retry=db_retried,
                extra=fields,
            )
        if row is None:
            log.info("alert_transition_no_open_alert", extra={**fields, "kind": t.kind})
            return
        log.info(
            f"alert_{t.kind}",
            extra={**fields, "alert_id": row.id, "severity": row.severity, "text": t.message},
        )
        value = encode_event(alert_event(t.kind, row))
        await self._retrier.kafka(
            functools.partial(self._producer.send, event_key(row), value),
            what="alert_publish",
            on_retry=kafka_retried,
            extra=fields,
        )
        await self._channel.publish_alert(value)
        self.counters.published_total += 1
