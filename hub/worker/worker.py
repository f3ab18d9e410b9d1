"""The worker's agents and timers, as the methods of one `Worker`, registered on the Faust app
in `register`. What they share is in `WorkerRuntime` (hub.worker.runtime); the processing
itself is in hub.agents."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, cast

import faust

from hub.agents.aggregate import recompute_isolated
from hub.agents.batching import IdleFlushBatcher
from hub.agents.ingest import (
    DecodedBatch,
    IngestCounters,
    OneAhead,
    decode_batch,
    ingest_batch,
)
from hub.agents.maintenance import maintain_partitions, maintain_rollups
from hub.agents.metadata import MetadataCounters, handle_device_metadata
from hub.agents.poison import describe_error
from hub.agents.retry import is_record_error, is_transient_db_error
from hub.agents.status import StatusCounters, handle_edge_metrics, handle_statuses
from hub.agents.tier_rollups import recompute_coarse_isolated
from hub.ownership import ownership_of
from hub.settings import HubSettings
from hub.storage.tiers import recomputable_since
from hub.worker.probes import register_probes
from hub.worker.runtime import Shared, WorkerRuntime
from hub.worker.stream_batches import idle_flush_events
from protocol import NormalisedReading

# The worker's lines keep the logger name they have always had.
log = logging.getLogger("hub.app")

# sysexits EX_SOFTWARE: an internal error; the supervisor (Kubernetes) restarts the process.
EXIT_WITHOUT_COMMIT: Final = 70
STATS_INTERVAL_S: Final = 60.0
ALERT_TICK_S: Final = 1.0
NOTIFY_INTERVAL_S: Final = 0.5
ROLLUP_INTERVAL_S: Final = 5.0
PARTITION_INTERVAL_S: Final = 3600.0
STATUS_BATCH_MAX: Final = 500
_EXITING: Final = {"action": "exit_without_commit"}

if TYPE_CHECKING:
    Events: TypeAlias = Sequence[faust.types.EventT[bytes]]


class Worker:
    """One worker process's agents (ingest, device_status, edge_metrics) and timers (alerts
    tick, rollups, partitions, stats), over the resources of `runtime`."""

    def __init__(self, settings: HubSettings, runtime: WorkerRuntime) -> None:
        self._settings = settings
        self._runtime = runtime
        self.counters = IngestCounters()
        self.status_counters = StatusCounters()
        self.metadata_counters = MetadataCounters()

    def register(self, app: faust.App) -> None:
        """Every topic, agent, timer, signal and probe of the worker, on `app`."""
        self._app = app

        # internal=True only makes Faust create the topic (with topic_partitions) before it
        # subscribes, so a hub that starts before any gateway has produced still gets assigned.
        def topic(name: str) -> faust.TopicT:
            return app.topic(name, key_type=bytes, value_type=bytes, internal=True)

        names = self._settings.topics
        app.agent(topic(names.telemetry), name="ingest", concurrency=1)(self.ingest)
        for name, source, handle in (
            ("device_status", names.device_status, self.statuses),
            ("edge_metrics", names.edge_metrics, self.heartbeats),
            ("device_metadata", names.device_metadata, self.device_metadata),
        ):
            app.agent(topic(source), name=name, concurrency=1)(self._batch_agent(name, handle))
        for interval_s, name, body in (
            (ALERT_TICK_S, "alerts_tick", self.alerts_tick),
            (ROLLUP_INTERVAL_S, "rollups", self.rollups),
            (PARTITION_INTERVAL_S, "partitions", self.partitions),
            (self._settings.windows_reload_s, "maintenance_windows", self.reload_windows),
            (self._settings.rules_poll_s, "rules_reload", self.rules_reload),
            (NOTIFY_INTERVAL_S, "notify", self.notify),
        ):
            app.timer(interval_s, name=name)(self._guarded(name, body))
        app.timer(STATS_INTERVAL_S, name="ingest_stats")(self.log_stats)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_before_shutdown.connect(self.on_before_shutdown)
        register_probes(app, self._runtime)

    # -- agents ------------------------------------------------------------------------------

    async def ingest(self, stream: faust.StreamT[bytes]) -> None:
        """Readings into PostgreSQL and Redis, batch after batch; each batch's events acked
        after its commit, in offset order. The next batch fills meanwhile (`IdleFlushBatcher`):
        an idle pipe flushes at once, under load batches are HUB_INGEST_BATCH_WAIT_S apart."""
        try:
            shared = await self._runtime.ready()
            batcher = IdleFlushBatcher[faust.types.EventT[Any]](
                self._settings.ingest_batch_max, interval_s=self._settings.ingest_batch_wait_s
            )
            one_ahead = OneAhead()
            async for events in idle_flush_events(cast(faust.Stream[bytes], stream), batcher):
                # Decoded now, while the batch before is being written (pure: nothing is
                # sent, written or acknowledged before `_commit`, in order).
                values = _as_bytes([event.value for event in events])
                decoded = decode_batch(values, self._runtime.bound)
                await one_ahead.submit(self._commit(shared, stream, events, values, decoded))
            await one_ahead.drain()
        except Exception:
            log.critical("ingest_failed", extra=_EXITING, exc_info=True)
            _exit_without_commit()

    async def _commit(
        self,
        shared: Shared,
        stream: faust.StreamT[bytes],
        events: Events,
        values: list[bytes],
        decoded: DecodedBatch,
    ) -> None:
        async def after_commit(readings: Sequence[NormalisedReading]) -> None:
            shared.rollups.mark_readings(readings, self._runtime.clock_ms())
            await shared.alerts.observe_readings(readings, self._runtime.clock_ms())

        try:
            await ingest_batch(
                values,
                db=shared.db,
                live=shared.live,
                dlq_producer=shared.dead_letters,
                counters=self.counters,
                retrier=self._runtime.retrier,
                bound=self._runtime.bound,
                after_commit=after_commit,
                decoded_values=decoded,
            )
            for event in events:
                await stream.ack(event)
        except Exception:
            log.critical("ingest_failed", extra=_EXITING, exc_info=True)
            _exit_without_commit()

    def _batch_agent(
        self, name: str, handle: Callable[[Shared, list[bytes]], Awaitable[None]]
    ) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
        """An agent handing each batch to `handle`; on a bug it stops the worker uncommitted."""

        async def agent(stream: faust.StreamT[bytes]) -> None:
            try:
                shared = await self._runtime.ready()
                async for batch in stream.take(
                    STATUS_BATCH_MAX, within=self._settings.ingest_batch_wait_s
                ):
                    await handle(shared, _as_bytes(batch))
            except Exception:
                log.critical(f"{name}_failed", extra=_EXITING, exc_info=True)
                _exit_without_commit()

        return agent

    async def statuses(self, shared: Shared, batch: list[bytes]) -> None:
        await handle_statuses(
            batch,
            db=shared.db,
            live=shared.live,
            alerts=shared.alerts,
            dlq=shared.dead_letters,
            counters=self.status_counters,
            retrier=self._runtime.retrier,
            bound=self._runtime.bound,
        )

    async def heartbeats(self, shared: Shared, batch: list[bytes]) -> None:
        await handle_edge_metrics(
            batch,
            live=shared.live,
            alerts=shared.alerts,
            dlq=shared.dead_letters,
            counters=self.status_counters,
            now_ms=self._runtime.clock_ms,
            retrier=self._runtime.retrier,
        )

    async def device_metadata(self, shared: Shared, batch: list[bytes]) -> None:
        if shared.metadata is None:
            return  # a stand-in database keeps no metadata
        await handle_device_metadata(
            batch,
            store=shared.metadata,
            dlq=shared.dead_letters,
            counters=self.metadata_counters,
            retrier=self._runtime.retrier,
            bound=self._runtime.bound,
        )

    # -- timers ------------------------------------------------------------------------------

    def _guarded(self, name: str, body: Callable[[Shared], Awaitable[None]]) -> Callable[[], Any]:
        """A timer run once start-up is done. A run that fails is logged and makes the worker
        unready until a later run succeeds; the timer goes on. (Exiting instead would restart
        the worker into the same failure, over and over, if the cause is in the data.)"""
        runtime = self._runtime

        async def run() -> None:
            shared = runtime.current
            if shared is None:
                return
            try:
                await body(shared)
            except Exception as exc:
                if runtime.closing:  # resources closed under it during shutdown
                    return
                runtime.timer_failures_total += 1
                if name not in runtime.failing_timers:  # once per episode, not per run
                    log.error("timer_failed", extra={"timer": name}, exc_info=True)
                runtime.failing_timers[name] = describe_error(exc)
                return
            if runtime.failing_timers.pop(name, None) is not None:
                log.info("timer_recovered", extra={"timer": name})

        return run

    async def alerts_tick(self, shared: Shared) -> None:
        # Ownership first: after a rebalance, the devices this worker gave up are silent here
        # and must not be taken for offline.
        ownership = self._runtime.take_ownership()
        if ownership is not None:
            await shared.alerts.retain(ownership)
        await shared.alerts.observe_shared_heartbeats(await shared.live.gateway_heartbeats())
        await shared.alerts.tick(self._runtime.clock_ms())

    async def reload_windows(self, shared: Shared) -> None:
        if shared.window_gate is not None:
            await shared.window_gate.reload()
        if shared.shelf_expiries is not None:
            await shared.shelf_expiries.publish()

    async def rules_reload(self, shared: Shared) -> None:
        if shared.rules is not None:
            await shared.rules.poll()

    async def notify(self, shared: Shared) -> None:
        # Its own timer: a receiver that times out delays notifications, never ingest.
        if shared.notify is not None:
            await shared.notify.run_once(wait=False)

    async def rollups(self, shared: Shared) -> None:
        now_ms = self._runtime.clock_ms()
        buckets = shared.rollups.take(now_ms)
        if not buckets:
            return
        try:
            await recompute_isolated(
                shared.db, buckets, shared.rollup_counters, is_poison=is_record_error
            )
            # Their hours and days, from the minutes just written (but none whose rows below
            # are past their retention).
            await recompute_coarse_isolated(
                shared.db,
                buckets,
                shared.rollup_counters,
                is_poison=is_record_error,
                since=recomputable_since(now_ms, self._settings.rollup_retention),
            )
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            shared.rollups.give_back(buckets)
            log.warning(
                "rollup_recompute_failed",
                extra={"buckets": len(buckets), "error": f"{type(exc).__name__}: {exc}"},
            )

    async def partitions(self, shared: Shared) -> None:
        now_ms = self._runtime.clock_ms()
        await maintain_partitions(
            shared.db,
            now_ms=now_ms,
            ahead_days=self._settings.partitions_ahead_days,
            retention_days=self._settings.retention_days,
        )
        await maintain_rollups(
            shared.db, now_ms=now_ms, retention_days=self._settings.rollup_retention
        )

    async def log_stats(self) -> None:
        shared = self._runtime.current
        counters, statuses = self.counters, self.status_counters
        notify = self._runtime.notify_counters
        log.info(
            "ingest_stats",
            extra={
                "batches_total": counters.batches_total,
                "records_total": counters.records_total,
                "readings_total": counters.readings_total,
                "dead_lettered_total": sum(counters.dead_lettered_total.values()),
                "status_dead_lettered_total": statuses.dead_lettered_total,
                "timer_failures_total": self._runtime.timer_failures_total,
                "db_retries_total": counters.db_retries_total,
                "redis_failed_total": 0 if shared is None else shared.live.stats.failed_total,
                "statuses_total": statuses.statuses_total,
                "heartbeats_total": statuses.heartbeats_total,
                "alert_transitions_total": (
                    0 if shared is None else shared.alerts.counters.transitions_total
                ),
                "rollups_pending": 0 if shared is None else len(shared.rollups),
                "rollups_skipped_total": (
                    0 if shared is None else shared.rollup_counters.skipped_total
                ),
                "notifications_delivered_total": notify.delivered_total,
                "notifications_failed_total": notify.failed_total,
                "notifications_suppressed_total": notify.suppressed_total,
                "notifications_given_up_total": notify.given_up_total,
            },
        )

    # -- signals -----------------------------------------------------------------------------

    def on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: list[Any] = list(args[0]) if args else []
        names = self._settings.topics
        mine = sorted(
            f"{tp.topic}[{tp.partition}]" for tp in assigned if tp.topic == names.telemetry
        )
        log.info("partitions_assigned", extra={"partitions": ",".join(mine) or "-"})
        keyed_by = (names.telemetry, names.edge_metrics)
        counts = {topic: self._app.consumer.topic_partitions(topic) for topic in keyed_by}
        self._runtime.hand_over_ownership(
            ownership_of(((tp.topic, tp.partition) for tp in assigned), counts, names)
        )

    async def on_before_shutdown(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        # Faust sends this once the streams are drained and their offsets acknowledged.
        await self._runtime.close()


def _as_bytes(values: Sequence[object]) -> list[bytes]:
    # value_serializer="raw" hands over bytes; anything else is a wiring mistake.
    out = [v for v in values if isinstance(v, bytes)]
    if len(out) != len(values):
        raise TypeError("record values must arrive as raw bytes")
    return out


def _exit_without_commit() -> NoReturn:
    """Faust would acknowledge (and then commit) the batch if the agent raised: exit instead,
    so the batch is redelivered to whichever worker takes the partitions next."""
    logging.shutdown()
    os._exit(EXIT_WITHOUT_COMMIT)
