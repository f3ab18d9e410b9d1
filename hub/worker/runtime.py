"""What one worker process holds: the database, Redis, the alert pipeline and the rollup
scheduler (`Shared`), opened once by `WorkerRuntime` before any agent consumes, with the start-up
work (migrations, partitions, restored alerts, rebuilt rollups), and closed at shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import faust

from hub.agents.aggregate import RollupCounters, RollupScheduler, startup_rebuild_since_ms
from hub.agents.alerts import AlertPipeline, AlertStore
from hub.agents.ingest import ReadingWriter
from hub.agents.maintenance import SchemaStore, prepare_schema
from hub.agents.records import TsBound, wall_clock_ms
from hub.agents.retry import Retrier, is_record_error
from hub.agents.rules_reload import RulesReloader, RuleVersionSource
from hub.agents.status import DeviceStateWriter
from hub.agents.tier_rollups import TierStore, rebuild_tiers, tiers_from
from hub.alarms.expiry import ShelfExpiries
from hub.alarms.gate import WindowGate
from hub.alarms.ports import AlarmStore
from hub.alarms.suppression import AlarmSuppression
from hub.notify.config import ConfigError, NotificationConfig
from hub.notify.dispatcher import DispatchCounters, Dispatcher
from hub.notify.senders import ChannelSender
from hub.notify.store import NotifyStore
from hub.ownership import Ownership
from hub.rules import AlertEngine, RuleSet
from hub.rules.edits import Seed
from hub.settings import HUB_DLQ_TOPIC, HubSettings
from hub.storage.live import LiveStore
from hub.storage.metadata_store import MetadataStore
from protocol import topics

if TYPE_CHECKING:  # asyncpg only where a worker runs on PostgreSQL
    from hub.storage.metadata_store import MetadataStore

log = logging.getLogger("hub.app")


class HubDatabase(ReadingWriter, DeviceStateWriter, AlertStore, TierStore, SchemaStore, Protocol):
    """Everything the worker needs from PostgreSQL (`hub.storage.postgres.Database`)."""

    async def ping(self) -> None: ...


DatabaseOpener = Callable[[HubSettings], AbstractAsyncContextManager[HubDatabase]]
RuleVersionsOpener = Callable[[HubSettings], AbstractAsyncContextManager[RuleVersionSource]]
NotifyOpener = Callable[[HubSettings], AbstractAsyncContextManager[NotifyStore]]


@asynccontextmanager
async def open_postgres(settings: HubSettings) -> AsyncIterator[HubDatabase]:
    from hub.storage.postgres import Database  # asyncpg only where a worker runs

    db = await Database.connect(settings.database_url)
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def open_postgres_rule_versions(settings: HubSettings) -> AsyncIterator[RuleVersionSource]:
    """The rule versions on a pool of their own: one connection, one query per poll."""
    import asyncpg

    from hub.storage.rule_versions import PostgresRuleVersions

    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=1,
        server_settings={"application_name": "iot-hub-worker-rules"},
    )
    try:
        yield PostgresRuleVersions(pool)
    finally:
        await pool.close()


@asynccontextmanager
async def open_postgres_notify(settings: HubSettings) -> AsyncIterator[NotifyStore]:
    """The dispatcher's store, on a small pool of its own: a slow receiver's deliveries never
    hold a connection that ingest waits for."""
    from hub.storage.notify_postgres import PostgresNotifyStore

    store, pool = await PostgresNotifyStore.connect(settings.database_url)
    try:
        yield store
    finally:
        await pool.close()


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


@dataclass(frozen=True)
class Shared:
    """What the agents and timers of one worker use, ready for use."""

    db: HubDatabase
    live: LiveStore
    alerts: AlertPipeline
    rollups: RollupScheduler
    rollup_counters: RollupCounters
    dead_letters: FaustDeadLetters
    rules: RulesReloader | None  # None: no rule versions to follow (the seed alone)
    # Maintenance windows that hold back new alerts; None on a database without them.
    window_gate: WindowGate | None = None
    shelf_expiries: ShelfExpiries | None = None
    notify: Dispatcher | None = None  # None: notifications off (a test's memory database)
    # Device metadata from the edge (hub.agents.metadata); None: a stand-in database.
    metadata: MetadataStore | None = None


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
        seed: Seed | None = None,
        open_rule_versions: RuleVersionsOpener | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        retrier: Retrier | None = None,
        open_notifications: NotifyOpener | None = None,
        notifications: NotificationConfig | None = None,
    ) -> None:
        self._app = app
        self._settings = settings
        self._rules = rules
        # What the dashboard's rule edits are layered over, and where their versions are.
        self._seed = seed
        self._open_rule_versions = open_rule_versions
        self._open_database = open_database
        self._open_notifications = open_notifications
        self._notifications = notifications  # HUB_NOTIFICATIONS_FILE, loaded
        self.notify_counters = DispatchCounters()
        self.clock_ms = clock_ms
        self.bound = TsBound(max_future_ms=settings.max_ts_future_s * 1000, clock_ms=clock_ms)
        # How every agent waits out PostgreSQL and Kafka outages: one for the whole worker.
        self.retrier = retrier or Retrier()
        # Timers whose last run failed (name -> error): the worker is not ready meanwhile.
        self.failing_timers: dict[str, str] = {}
        self.timer_failures_total = 0
        self._lock = asyncio.Lock()
        self._resources = AsyncExitStack()
        self._shared: Shared | None = None
        self.closing = False
        # The latest partition assignment, until a tick hands it to the alert engine.
        self._pending_ownership: Ownership | None = None

    def hand_over_ownership(self, ownership: Ownership) -> None:
        """A new partition assignment (a rebalance), for the next alerts tick."""
        self._pending_ownership = ownership

    def take_ownership(self) -> Ownership | None:
        """The assignment handed over since the last call, if any."""
        ownership, self._pending_ownership = self._pending_ownership, None
        return ownership

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
        db = await self.retrier.db(
            lambda: resources.enter_async_context(self._open_database(settings)),
            what="db_connect",
        )
        live = await resources.enter_async_context(LiveStore.from_url(settings.redis_url))
        await prepare_schema(
            db,
            now_ms=self.clock_ms(),
            ahead_days=settings.partitions_ahead_days,
            retrier=self.retrier,
        )
        for name in (settings.dlq_topic, settings.topics.alerts):
            await self._app.topic(name, internal=True).maybe_declare()
        alarms = _alarm_store(db)
        window_gate = None if alarms is None else WindowGate(alarms)
        if window_gate is not None:
            await self.retrier.db(window_gate.reload, what="maintenance_windows_load")
        alerts = self._alert_pipeline(db, live, window_gate)
        rules = await self._rules_reloader(alerts)
        restored = await alerts.restore(self.clock_ms())
        grace_ms = round(settings.rollup_grace_s * 1000)
        since = startup_rebuild_since_ms(self.clock_ms(), grace_ms)
        rollup_counters = RollupCounters()
        rebuilt = await self._rebuild_recent_rollups(db, since, rollup_counters)
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
            dead_letters=FaustDeadLetters(self._app, settings.dlq_topic),
            window_gate=window_gate,
            shelf_expiries=None if alarms is None else ShelfExpiries(alarms, live, self.clock_ms),
            rules=rules,
            notify=await self._dispatcher(alarms),
            metadata=_metadata_store(db),
        )

    async def _dispatcher(self, alarms: AlarmStore | None) -> Dispatcher | None:
        """The notification dispatcher, its store seeded from the file (if any); shelved alerts
        and maintenance windows (`alarms`) suppress what it would send."""
        if self._open_notifications is None:
            return None
        settings, resources = self._settings, self._resources
        opener = self._open_notifications
        store = await self.retrier.db(
            lambda: resources.enter_async_context(opener(settings)), what="notify_connect"
        )
        file_config = self._notifications
        if file_config is not None:
            try:
                await self.retrier.db(
                    functools.partial(store.seed_from_file, file_config), what="notify_seed"
                )
                log.info(
                    "notifications_seeded",
                    extra={
                        "channels": len(file_config.channels),
                        "routes": len(file_config.routes),
                    },
                )
            except ConfigError as exc:
                # An API route names a channel the file dropped: keep what is stored.
                log.error("notifications_file_refused", extra={"error": str(exc)})
        sender = ChannelSender(public_url=settings.public_url)
        resources.push_async_callback(sender.close)
        return Dispatcher(
            store,
            sender,
            clock_ms=self.clock_ms,
            public_url=settings.public_url,
            retry_max_s=settings.notifications_retry_max_s,
            counters=self.notify_counters,
            suppression=None if alarms is None else AlarmSuppression(alarms),
        )

    async def _rules_reloader(self, alerts: AlertPipeline) -> RulesReloader | None:
        """Follows the rule versions, the newest applied now, before any alert is restored."""
        opener = self._open_rule_versions
        if opener is None or self._seed is None:
            return None
        source = await self.retrier.db(
            lambda: self._resources.enter_async_context(opener(self._settings)),
            what="rules_connect",
        )
        reloader = RulesReloader(self._seed, source, alerts.replace_rules)
        await self.retrier.db(reloader.poll, what="rules_load")
        return reloader

    async def _rebuild_recent_rollups(
        self, db: HubDatabase, since: int, counters: RollupCounters
    ) -> int:
        """Every tier from ``since`` up to the newest ts ingest accepts: the minutes marked
        before a crash, and their hours and days. A minute that cannot be computed is skipped,
        so a poisoned minute cannot turn every restart into another crash."""
        until = self.clock_ms() + self.bound.max_future_ms
        written = await self.retrier.db(
            lambda: rebuild_tiers(
                db, tiers_from("all"), since, until, counters, is_poison=is_record_error
            ),
            what="startup_rollup_rebuild",
        )
        return sum(written.values())

    def _alert_pipeline(
        self, db: HubDatabase, live: LiveStore, gate: WindowGate | None
    ) -> AlertPipeline:
        """The worker's one alert engine, and where its transitions go."""
        engine = AlertEngine(
            self._rules,
            device_offline_after_s=self._settings.device_offline_after_s,
            gateway_offline_after_s=self._settings.gateway_offline_after_s,
            buffer_runway_warn_s=self._settings.buffer_runway_warn_s,
        )
        return AlertPipeline(
            engine,
            store=db,
            channel=live,
            producer=FaustAlertEvents(self._app, self._settings.topics.alerts),
            retrier=self.retrier,
            gate=gate,
        )

    async def close(self) -> None:
        self.closing = True
        if self._shared is not None and self._shared.notify is not None:
            await self._shared.notify.stop()  # the sends in flight, recorded first
        await self._resources.aclose()


def _alarm_store(db: HubDatabase) -> AlarmStore | None:
    """Over the worker's own pool when it is PostgreSQL (a stand-in database has no windows and
    no shelves)."""
    from hub.alarms.postgres import PostgresAlarmStore
    from hub.storage.postgres import Database

    if not isinstance(db, Database):
        return None
    return PostgresAlarmStore(db.pool)


def _metadata_store(db: HubDatabase) -> MetadataStore | None:
    """Over the worker's own pool when it is PostgreSQL, like `_alarm_store`."""
    from hub.storage.metadata_store import PostgresMetadataStore
    from hub.storage.postgres import Database

    if not isinstance(db, Database):
        return None
    return PostgresMetadataStore(db.pool)
