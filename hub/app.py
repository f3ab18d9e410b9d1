"""The hub's Faust application: its topics, its agents, and the resources they hold.

Findings that shape this module (faust-streaming 0.15.3, aiokafka 0.14, Kafka 4.0.1; see
tests/integration/test_hub_worker.py):

* `stream.take()` acknowledges a batch's events when the agent asks for the next batch, and
  also when the agent body raises; an agent crash then commits. So the agents never raise for
  an outage (they wait), nor for a record they cannot use (it goes to the dead-letter topic
  with its reason, `hub.agents.records` and `hub.agents.poison`); on anything else the process
  exits without committing.
* Ingest uses `noack_take()` instead, which yields the events unacknowledged: each batch is
  written in the background (`OneAhead`) while Faust collects the next one, and its events are
  acked only after its PostgreSQL commit, batch after batch in offset order (so #606's
  off-by-one, which needs acks out of order, cannot bite). Overlapping the write with the
  collection, plus COPY straight into `readings`, took bench.hub_ingest from about 24k to 33k
  rows/s; the rest is CPU in this one process (Faust's per-event path, decoding, alert rules).
* Concurrency stays 1: with more actors Faust can commit past an event still being processed
  (faust-streaming issue #606, an off-by-one in `Consumer._new_offset`).
* One fetcher feeds every agent, and it blocks while any one stream's buffer is full: the
  slowest agent sets the pace of all topics (a backlog of device statuses delays telemetry).
  So every agent works in batches and keeps per-record database round trips out of its path.
* On SIGTERM the worker stops fetching, waits for the batch in flight to finish
  (`stream_wait_empty`, no time limit), commits, leaves the group and exits 0.

What one worker process runs (`WorkerRuntime` holds what they share, opened once at start-up:
the database pool, Redis, the alert engine and the rollup scheduler):

* start-up, before any agent consumes: migrations, today's partitions and those ahead, the
  alerts still open (restored into the engine), and the rollups of the last grace + 5 minutes
  rebuilt (buckets a crash left uncomputed);
* agent `ingest` (`iot.telemetry`): readings into PostgreSQL, Redis; then, per committed batch,
  the alert engine and the rollup scheduler (`hub.agents.ingest`);
* agent `device_status` (`iot.device-status`) and agent `edge_metrics` (`iot.edge-metrics`):
  presence and heartbeats (`hub.agents.status`);
* timers: `alerts_tick` every second (offline detection), `rollups` every 5 s
  (`hub.agents.aggregate`), `partitions` every hour (`hub.agents.maintenance`), stats. A timer
  run that fails is logged and makes `/readyz` answer 503 until a run succeeds again.

The alert engine is per process; see `hub.agents.alerts` for what that means with several
workers (gateway heartbeats are partitioned like everything else).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol, cast

import faust

from hub.agents.aggregate import (
    RollupCounters,
    RollupScheduler,
    RollupStore,
    rebuild_isolated,
    recompute_isolated,
    startup_rebuild_since_ms,
)
from hub.agents.alerts import AlertPipeline, AlertStore
from hub.agents.ingest import IngestCounters, OneAhead, ReadingWriter, ingest_batch
from hub.agents.maintenance import SchemaStore, maintain_partitions, prepare_schema
from hub.agents.poison import describe_error
from hub.agents.records import TsBound, wall_clock_ms
from hub.agents.retry import is_record_error, is_transient_db_error, retry_transient
from hub.agents.status import (
    DeviceStateWriter,
    StatusCounters,
    handle_edge_metrics,
    handle_statuses,
)
from hub.ownership import Ownership, ownership_of
from hub.rules import AlertEngine, RuleSet, load_rules
from hub.settings import HUB_DLQ_TOPIC, HubSettings
from hub.storage.live import LiveStore
from protocol import NormalisedReading, topics

log = logging.getLogger(__name__)

# sysexits EX_SOFTWARE: an internal error; the supervisor (Kubernetes) restarts the process.
EXIT_WITHOUT_COMMIT: Final = 70
STATS_INTERVAL_S: Final = 60.0
ALERT_TICK_S: Final = 1.0
ROLLUP_INTERVAL_S: Final = 5.0
PARTITION_INTERVAL_S: Final = 3600.0
STATUS_BATCH_MAX: Final = 500
_EXITING: Final = {"action": "exit_without_commit"}


class HubDatabase(ReadingWriter, DeviceStateWriter, AlertStore, RollupStore, SchemaStore, Protocol):
    """Everything the worker needs from PostgreSQL (`hub.storage.postgres.Database`)."""

    async def ping(self) -> None: ...


DatabaseOpener = Callable[[HubSettings], AbstractAsyncContextManager[HubDatabase]]


@asynccontextmanager
async def open_postgres(settings: HubSettings) -> AsyncIterator[HubDatabase]:
    from hub.storage.postgres import Database  # asyncpg only where a worker runs

    db = await Database.connect(settings.database_url)
    try:
        yield db
    finally:
        await db.close()


class FaustDeadLetters:
    """`DeadLetterSink` over the app's own producer (acks=all): returns once Kafka has it."""

    def __init__(self, app: faust.App, topic: str = HUB_DLQ_TOPIC) -> None:
        self._app = app
        self._topic = topic

    async def send(self, value: bytes, *, error: str) -> None:
        await self._app.producer.send_and_wait(
            self._topic, None, value, None, None, [("error", error.encode())]
        )


class FaustAlertEvents:
    """`EventProducer` for `iot.alerts` over the app's own producer (acks=all)."""

    def __init__(self, app: faust.App, topic: str = topics.ALERTS) -> None:
        self._app = app
        self._topic = topic

    async def send(self, key: bytes | None, value: bytes) -> None:
        await self._app.producer.send_and_wait(self._topic, key, value, None, None, None)


def kafka_brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def kafka_credentials(settings: HubSettings) -> faust.types.auth.CredentialsT | None:
    """Faust's credentials for HUB_KAFKA_SECURITY_PROTOCOL: its consumer, producer and topic
    admin all use them."""
    context = settings.kafka_ssl_context()
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.kafka_sasl_password is not None  # the settings' check made sure
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return None


@dataclass(frozen=True)
class Shared:
    """What the agents and timers of one worker use, ready for use."""

    db: HubDatabase
    live: LiveStore
    alerts: AlertPipeline
    rollups: RollupScheduler
    rollup_counters: RollupCounters
    dead_letters: FaustDeadLetters


class WorkerRuntime:
    """Opens the shared resources once (whichever agent asks first) and closes them at shutdown.

    Start-up work runs here, before `ready` returns to any agent, so nothing is consumed before
    the schema is migrated, the open alerts are restored and the recent rollups are rebuilt.
    """

    def __init__(
        self,
        app: faust.App,
        settings: HubSettings,
        rules: RuleSet,
        open_database: DatabaseOpener,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._app = app
        self._settings = settings
        self._rules = rules
        self._open_database = open_database
        self.clock_ms = clock_ms
        self.bound = TsBound(max_future_ms=settings.max_ts_future_s * 1000, clock_ms=clock_ms)
        # Timers whose last run failed (name -> error): the worker is not ready meanwhile.
        self.failing_timers: dict[str, str] = {}
        self.timer_failures_total = 0
        self._lock = asyncio.Lock()
        self._resources = AsyncExitStack()
        self._shared: Shared | None = None
        self.closing = False
        # The latest partition assignment, until a tick hands it to the alert engine.
        self.pending_ownership: Ownership | None = None

    @property
    def current(self) -> Shared | None:
        """The resources once open, None before start-up finished and once closing."""
        return None if self.closing else self._shared

    async def ready(self) -> Shared:
        async with self._lock:
            if self._shared is None:
                self._shared = await self._open()
            return self._shared

    async def _open(self) -> Shared:
        settings = self._settings
        resources = self._resources
        # PostgreSQL may be away when the worker starts: wait for it like for a write.
        db = await retry_transient(
            lambda: resources.enter_async_context(self._open_database(settings)),
            what="db_connect",
            is_transient=is_transient_db_error,
        )
        live = await resources.enter_async_context(LiveStore.from_url(settings.redis_url))
        await prepare_schema(db, now_ms=self.clock_ms(), ahead_days=settings.partitions_ahead_days)
        for name in (HUB_DLQ_TOPIC, topics.ALERTS):
            await self._app.topic(name, internal=True).maybe_declare()
        engine = AlertEngine(
            self._rules,
            device_offline_after_s=settings.device_offline_after_s,
            gateway_offline_after_s=settings.gateway_offline_after_s,
        )
        alerts = AlertPipeline(engine, store=db, channel=live, producer=FaustAlertEvents(self._app))
        restored = await alerts.restore(self.clock_ms())
        grace_ms = round(settings.rollup_grace_s * 1000)
        now = self.clock_ms()
        since = startup_rebuild_since_ms(now, grace_ms)
        # Up to the newest ts ingest accepts; a minute that cannot be computed is skipped, so a
        # poisoned minute cannot turn every restart into another crash.
        rollup_counters = RollupCounters()
        rebuilt = await retry_transient(
            lambda: rebuild_isolated(
                db,
                since,
                now + self.bound.max_future_ms,
                rollup_counters,
                is_poison=is_record_error,
            ),
            what="startup_rollup_rebuild",
            is_transient=is_transient_db_error,
        )
        log.info(
            "worker_ready",
            extra={
                "alerts_restored": restored,
                "rollups_rebuilt": rebuilt,
                "rollups_skipped": rollup_counters.skipped_total,
                "since_ms": since,
            },
        )
        return Shared(
            db=db,
            live=live,
            alerts=alerts,
            rollups=RollupScheduler(grace_ms=grace_ms),
            rollup_counters=rollup_counters,
            dead_letters=FaustDeadLetters(self._app),
        )

    async def close(self) -> None:
        self.closing = True
        await self._resources.aclose()


def create_app(
    settings: HubSettings,
    *,
    open_database: DatabaseOpener = open_postgres,
    datadir: Path | None = None,
    rules: RuleSet | None = None,
) -> faust.App:
    """The worker's Faust app. Loads the alert rules now (`hub.rules.RulesError` if invalid),
    so a bad rules file stops the worker before it joins the consumer group."""
    app = faust.App(
        settings.consumer_group,
        broker=kafka_brokers(settings.kafka_bootstrap),
        broker_credentials=kafka_credentials(settings),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=settings.worker_web_port != 0,
        web_port=settings.worker_web_port or 6066,
        producer_acks=-1,
        broker_session_timeout=settings.kafka_session_timeout_s,
        # Kafka's rule of thumb: at most a third of the session timeout.
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_s / 3),
        # Drain the batch in flight on shutdown before the final commit (the default, stated).
        stream_wait_empty=True,
        # Faust pauses its one fetcher whenever a stream buffer is full; 4096 (the default)
        # starved the ingest batches (bench.hub_ingest: 24k -> 30k rows/s).
        stream_buffer_maxsize=32_768,
        # Faust creates its data directory even with the memory store; keep it out of the cwd.
        datadir=str(datadir or Path(tempfile.gettempdir()) / f"{settings.consumer_group}-faust"),
    )
    runtime = WorkerRuntime(
        app,
        settings,
        rules if rules is not None else load_rules(settings.rules_file),
        open_database,
    )
    counters = IngestCounters()
    status_counters = StatusCounters()

    # internal=True only makes Faust create the topic (with topic_partitions) before it
    # subscribes, so a hub that starts before any gateway has produced still gets assigned.
    telemetry = app.topic(topics.TELEMETRY, key_type=bytes, value_type=bytes, internal=True)
    device_status = app.topic(topics.DEVICE_STATUS, key_type=bytes, value_type=bytes, internal=True)
    edge_metrics = app.topic(topics.EDGE_METRICS, key_type=bytes, value_type=bytes, internal=True)

    async def ingest(stream: faust.StreamT[bytes]) -> None:
        try:
            shared = await runtime.ready()

            async def after_commit(readings: Sequence[NormalisedReading]) -> None:
                shared.rollups.mark_readings(readings, runtime.clock_ms())
                await shared.alerts.observe_readings(readings, runtime.clock_ms())

            async def commit(events: Sequence[faust.types.EventT[bytes]]) -> None:
                try:
                    await ingest_batch(
                        _as_bytes([event.value for event in events]),
                        db=shared.db,
                        live=shared.live,
                        dlq_producer=shared.dead_letters,
                        counters=counters,
                        bound=runtime.bound,
                        after_commit=after_commit,
                    )
                    for event in events:
                        await stream.ack(event)
                except Exception:
                    log.critical("ingest_failed", extra=_EXITING, exc_info=True)
                    _exit_without_commit()

            # Events are acked by `commit`, after the PostgreSQL commit, in offset order; the
            # next batch is collected (and Kafka fetched) while the previous one is written.
            one_ahead = OneAhead()
            async for batch in cast(faust.Stream[bytes], stream).noack_take(
                settings.ingest_batch_max, within=settings.ingest_batch_wait_s
            ):
                # Typed as values, but noack_take yields the events themselves (to ack).
                events = cast(Sequence[faust.types.EventT[bytes]], batch)
                await one_ahead.submit(commit(events))
            await one_ahead.drain()
        except Exception:
            log.critical("ingest_failed", extra=_EXITING, exc_info=True)
            _exit_without_commit()

    def batch_agent(
        name: str, handle: Callable[[Shared, list[bytes]], Awaitable[None]]
    ) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
        """An agent handing each batch to `handle`; on a bug it stops the worker uncommitted."""

        async def agent(stream: faust.StreamT[bytes]) -> None:
            try:
                shared = await runtime.ready()
                async for batch in stream.take(
                    STATUS_BATCH_MAX, within=settings.ingest_batch_wait_s
                ):
                    await handle(shared, _as_bytes(batch))
            except Exception:
                log.critical(f"{name}_failed", extra=_EXITING, exc_info=True)
                _exit_without_commit()

        return agent

    async def status(shared: Shared, batch: list[bytes]) -> None:
        await handle_statuses(
            batch,
            db=shared.db,
            live=shared.live,
            alerts=shared.alerts,
            dlq=shared.dead_letters,
            counters=status_counters,
            bound=runtime.bound,
        )

    async def heartbeats(shared: Shared, batch: list[bytes]) -> None:
        await handle_edge_metrics(
            batch,
            live=shared.live,
            alerts=shared.alerts,
            dlq=shared.dead_letters,
            counters=status_counters,
            now_ms=runtime.clock_ms,
        )

    app.agent(telemetry, name="ingest", concurrency=1)(ingest)
    app.agent(device_status, name="device_status", concurrency=1)(
        batch_agent("device_status", status)
    )
    app.agent(edge_metrics, name="edge_metrics", concurrency=1)(
        batch_agent("edge_metrics", heartbeats)
    )

    def timer(
        interval_s: float, name: str
    ) -> Callable[[Callable[[Shared], Awaitable[None]]], None]:
        """A timer that runs once start-up is done. A run that fails is logged and makes the
        worker unready until a later run succeeds; the timer goes on. (Exiting instead would
        restart the worker into the same failure, over and over, if the cause is in the data.)"""

        def register(body: Callable[[Shared], Awaitable[None]]) -> None:
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

            app.timer(interval_s, name=name)(run)

        return register

    @timer(ALERT_TICK_S, "alerts_tick")
    async def alerts_tick(shared: Shared) -> None:
        # Ownership first: after a rebalance, the devices this worker gave up are silent here
        # and must not be taken for offline.
        ownership, runtime.pending_ownership = runtime.pending_ownership, None
        if ownership is not None:
            await shared.alerts.retain(ownership)
        await shared.alerts.observe_shared_heartbeats(await shared.live.gateway_heartbeats())
        await shared.alerts.tick(runtime.clock_ms())

    @timer(ROLLUP_INTERVAL_S, "rollups")
    async def rollups(shared: Shared) -> None:
        buckets = shared.rollups.take(runtime.clock_ms())
        if not buckets:
            return
        try:
            await recompute_isolated(
                shared.db, buckets, shared.rollup_counters, is_poison=is_record_error
            )
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            shared.rollups.give_back(buckets)
            log.warning(
                "rollup_recompute_failed",
                extra={"buckets": len(buckets), "error": f"{type(exc).__name__}: {exc}"},
            )

    @timer(PARTITION_INTERVAL_S, "partitions")
    async def partitions(shared: Shared) -> None:
        await maintain_partitions(
            shared.db,
            now_ms=runtime.clock_ms(),
            ahead_days=settings.partitions_ahead_days,
            retention_days=settings.retention_days,
        )

    async def log_stats() -> None:
        shared = runtime.current
        redis_failed = 0 if shared is None else shared.live.stats.failed_total
        alert_counters = None if shared is None else shared.alerts.counters
        log.info(
            "ingest_stats",
            extra={
                "batches_total": counters.batches_total,
                "readings_total": counters.readings_total,
                "dead_lettered_total": sum(counters.dead_lettered_total.values()),
                "status_dead_lettered_total": status_counters.dead_lettered_total,
                "timer_failures_total": runtime.timer_failures_total,
                "db_retries_total": counters.db_retries_total,
                "redis_failed_total": redis_failed,
                "statuses_total": status_counters.statuses_total,
                "heartbeats_total": status_counters.heartbeats_total,
                "alert_transitions_total": (
                    0 if alert_counters is None else alert_counters.transitions_total
                ),
                "rollups_pending": 0 if shared is None else len(shared.rollups),
                "rollups_skipped_total": 0
                if shared is None
                else shared.rollup_counters.skipped_total,
            },
        )

    app.timer(STATS_INTERVAL_S, name="ingest_stats")(log_stats)

    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: list[Any] = list(args[0]) if args else []
        mine = sorted(
            f"{tp.topic}[{tp.partition}]" for tp in assigned if tp.topic == topics.TELEMETRY
        )
        log.info("partitions_assigned", extra={"partitions": ",".join(mine) or "-"})
        keyed_by = (topics.TELEMETRY, topics.EDGE_METRICS)
        counts = {topic: app.consumer.topic_partitions(topic) for topic in keyed_by}
        runtime.pending_ownership = ownership_of(
            ((tp.topic, tp.partition) for tp in assigned), counts
        )

    app.on_partitions_assigned.connect(on_assigned)
    register_probes(app, runtime)

    async def on_before_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust sends this once the streams are drained and their offsets acknowledged.
        await runtime.close()

    app.on_before_shutdown.connect(on_before_shutdown)
    return app


READY_PING_TIMEOUT_S: Final = 2.0


def register_probes(app: faust.App, runtime: WorkerRuntime) -> None:
    """`/healthz` and `/readyz` on the worker's Faust web server (HUB_WORKER_WEB_PORT), for
    Kubernetes probes: alive while the event loop answers; ready once start-up is done (schema,
    restored alerts), PostgreSQL answers and no timer's last run failed. Kafka is not a check:
    Faust reconnects by itself, and a restart would not bring the broker back."""

    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        shared = runtime.current
        checks = {
            "started": shared is not None,
            "postgres": False,
            "timers": not runtime.failing_timers,
        }
        if shared is not None:
            try:
                await asyncio.wait_for(shared.db.ping(), READY_PING_TIMEOUT_S)
                checks["postgres"] = True
            except Exception as exc:
                # Unreachable or overloaded: not ready (the agents log the outage themselves).
                if not (isinstance(exc, TimeoutError) or is_transient_db_error(exc)):
                    raise
        ready = all(checks.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
        if runtime.failing_timers:
            body["failing_timers"] = dict(runtime.failing_timers)
        return view.json(body, status=200 if ready else 503)


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
