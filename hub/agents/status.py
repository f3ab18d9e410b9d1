"""Status: device presence (`iot.device-status`) and gateway health (`iot.edge-metrics`).

Plain async functions over one `stream.take()` batch each, like ingest: they return once the
batch is durable and never raise for an outage (they wait and retry), so Faust commits the
batch's offsets only after its effects.

* A device status (the newest per device of the batch) goes to `devices.state` in PostgreSQL,
  then (when it changed the state) to Redis `iot:device_state`, then to the alert engine (an
  explicit "offline" raises device_offline at once).
* A gateway's edge metrics are its heartbeat and its buffer runway for the alert engine, and
  its latest health for the dashboard in the Redis hash `iot:gateways` (the record plus the
  hub's `received_ts`).

A record that does not decode goes to the hub's dead-letter topic with its reason, as in ingest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.agents.alerts import AlertPipeline
from hub.agents.poison import isolate_poison
from hub.agents.records import (
    DeadLetters,
    DeadLetterSink,
    TsBound,
    decode_records,
    decode_timestamped,
)
from hub.agents.retry import Retrier, is_record_error
from hub.rules import AlertEngine, AlertTransition
from hub.storage.redis_values import GatewayHealth, Presence
from protocol import DeviceStatus, EdgeMetrics

log = logging.getLogger(__name__)


class DeviceStateWriter(Protocol):
    """`hub.storage.postgres.Database.set_device_state`: True when the state changed."""

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool: ...


class StatusLive(Protocol):
    """The Redis side (`hub.storage.live.LiveStore`): best effort, never raises for an outage."""

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: Presence, ts_ms: int
    ) -> bool: ...

    async def set_gateway_state(self, health: GatewayHealth) -> bool: ...


@dataclass
class StatusCounters:
    statuses_total: int = 0
    state_changes_total: int = 0
    heartbeats_total: int = 0
    dead_lettered_total: int = 0
    db_retries_total: int = 0


def newest_per_device(statuses: Sequence[DeviceStatus]) -> list[DeviceStatus]:
    """The newest status of each device in a batch (the later one on a tie), in batch order.

    The older ones would be overruled within the same batch anyway: the database ignores a
    status older than the one applied, and the engine's verdict follows the newest. A backlog
    (a hub restarting behind thousands of retained statuses) then costs a transaction per
    device and batch instead of one per record.
    """
    newest: dict[str, tuple[int, DeviceStatus]] = {}
    for index, status in enumerate(statuses):
        seen = newest.get(status.device_id)
        if seen is None or status.ts >= seen[1].ts:
            newest[status.device_id] = (index, status)
    return [status for _, status in sorted(newest.values(), key=lambda pair: pair[0])]


async def handle_statuses(
    raw_values: Sequence[bytes],
    *,
    db: DeviceStateWriter,
    live: StatusLive,
    alerts: AlertPipeline,
    dlq: DeadLetterSink,
    counters: StatusCounters,
    retrier: Retrier,
    bound: TsBound | None = None,
) -> None:
    decoded, invalid = decode_timestamped(raw_values, DeviceStatus, bound or TsBound())
    dead_letters = DeadLetters(dlq, retrier)
    await dead_letters.send(invalid, what="undecodable_statuses")
    counters.dead_lettered_total += len(invalid)

    def db_retried() -> None:
        counters.db_retries_total += 1

    async def apply(s: DeviceStatus) -> None:
        changed = await retrier.db(
            functools.partial(
                db.set_device_state, s.device_id, s.site, s.gateway_id, s.state, s.ts
            ),
            what="device_state_write",
            on_retry=db_retried,
            extra={"device_id": s.device_id, "gateway_id": s.gateway_id},
        )
        if changed:
            # Only a change: a stale status (older than the state applied) must not overwrite it.
            counters.state_changes_total += 1
            log.info(
                "device_state_changed",
                extra={"device_id": s.device_id, "gateway_id": s.gateway_id, "state": s.state},
            )
            await live.set_device_state(s.device_id, s.site, s.gateway_id, s.state, s.ts)
        await alerts.feed(
            functools.partial(
                AlertEngine.observe_status,
                device_id=s.device_id,
                gateway_id=s.gateway_id,
                state=s.state,
                ts_ms=s.ts,
            )
        )

    async def process(chunk: Sequence[tuple[bytes, DeviceStatus]]) -> None:
        for _, status in chunk:
            await apply(status)

    counters.statuses_total += len(decoded)
    raw_of = {id(status): raw for raw, status in decoded}  # the records live on in `decoded`
    newest = [(raw_of[id(s)], s) for s in newest_per_device([s for _, s in decoded])]
    # Transient errors never reach the isolation: `apply` waits them out itself.
    poison = await isolate_poison(newest, process, is_poison=is_record_error)
    await dead_letters.send_poison(poison, what="status")
    counters.dead_lettered_total += len(poison)


def _heard(engine: AlertEngine, *, metrics: EdgeMetrics, ts_ms: int) -> list[AlertTransition]:
    """A gateway's edge metrics for the engine: its heartbeat, then its buffer runway."""
    return [
        *engine.observe_heartbeat(metrics.gateway_id, ts_ms),
        *engine.observe_runway(metrics.gateway_id, metrics.buffer_runway_s, ts_ms),
    ]


async def handle_edge_metrics(
    raw_values: Sequence[bytes],
    *,
    live: StatusLive,
    alerts: AlertPipeline,
    dlq: DeadLetterSink,
    counters: StatusCounters,
    now_ms: Callable[[], int],
    retrier: Retrier,
) -> None:
    decoded, invalid = decode_records(raw_values, EdgeMetrics)
    dead_letters = DeadLetters(dlq, retrier)
    await dead_letters.send(invalid, what="undecodable_edge_metrics")
    counters.dead_lettered_total += len(invalid)

    async def process(chunk: Sequence[tuple[bytes, EdgeMetrics]]) -> None:
        for _, m in chunk:
            health = GatewayHealth.received(m, now_ms())
            await live.set_gateway_state(health)
            await alerts.feed(functools.partial(_heard, metrics=m, ts_ms=health.heard))
            counters.heartbeats_total += 1

    poison = await isolate_poison(decoded, process, is_poison=is_record_error)
    await dead_letters.send_poison(poison, what="edge_metrics")
    counters.dead_lettered_total += len(poison)
