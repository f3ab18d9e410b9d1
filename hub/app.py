"""The hub's Faust application: its topics, its agents, and the resources they hold.

Findings that shape this module (faust-streaming 0.15.3, aiokafka 0.14, Kafka 4.0.1; see
tests/integration/test_hub_worker.py):

* `stream.take()` acknowledges a batch's events when the agent asks for the next batch, and
  also when the agent body raises; an agent crash then commits. So the agents never raise for
  an outage (they wait), nor for a record they cannot use (it goes to the dead-letter topic
  with its reason, `hub.agents.records` and `hub.agents.poison`); on anything else the process
  exits without committing.
* Ingest uses its own take instead (`hub.worker.stream_batches`, built like `noack_take()`), which
  yields the events unacknowledged: a processor hands each event to an `IdleFlushBatcher`, so
  the next batch fills while the agent writes the previous one, and its events are acked only
  after its PostgreSQL commit, batch after batch in offset order (so #606's off-by-one, which
  needs acks out of order, cannot bite). `noack_take()` flushed on a fixed `within` tick, which
  made even a lone reading wait (about half of the worker's share of the live latency); the
  batcher flushes at once when the pipe is idle and spaces batches by HUB_INGEST_BATCH_WAIT_S
  under load (`hub.agents.batching`).
* The consumer's fetch waits at most 100 ms (`hub.worker.kafka.HubApp`), not Faust's hard-coded
  1.5 s, which could hold every telemetry partition back that long.
* Concurrency stays 1: with more actors Faust can commit past an event still being processed
  (faust-streaming issue #606, an off-by-one in `Consumer._new_offset`).
* One fetcher feeds every agent, and it blocks while any one stream's buffer is full: the
  slowest agent sets the pace of all topics (a backlog of device statuses delays telemetry).
  So every agent works in batches and keeps per-record database round trips out of its path.
* On SIGTERM the worker stops fetching, waits for the batch in flight to finish
  (`stream_wait_empty`, no time limit), commits, leaves the group and exits 0.

What one worker process runs (`hub.worker.Worker`; `hub.worker.runtime.WorkerRuntime` holds what
they share, opened once at start-up: the database pool, Redis, the alert engine and the rollup
scheduler):

* start-up, before any agent consumes: migrations, today's partitions and those ahead, the
  alerts still open (restored into the engine), and the rollups of the last grace + 5 minutes
  rebuilt (buckets a crash left uncomputed);
* agent `ingest` (`iot.telemetry`): readings into PostgreSQL, Redis; then, per committed batch,
  the alert engine and the rollup scheduler (`hub.agents.ingest`);
* agent `device_status` (`iot.device-status`) and agent `edge_metrics` (`iot.edge-metrics`):
  presence and heartbeats (`hub.agents.status`);
* agent `device_metadata` (`iot.device-metadata`): what gateways report of their devices'
  metrics and place, stored as the edge layer of device metadata (`hub.agents.metadata`);
* timers: `alerts_tick` every second (offline detection), `rollups` every 5 s
  (`hub.agents.aggregate`), `partitions` every hour (`hub.agents.maintenance`),
  `rules_reload` every HUB_RULES_POLL_S (the dashboard's rule edits, `hub.agents.rules_reload`;
  the newest version is also applied at start-up, before anything is consumed), stats. A timer
  run that fails is logged and makes `/readyz` answer 503 until a run succeeds again.

The alert engine is per process; see `hub.agents.alerts` for what that means with several
workers (gateway heartbeats are partitioned like everything else).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust

from hub.notify.config import load_file
from hub.rules import RuleSet, load_rules
from hub.rules.edits import load_seed
from hub.settings import HubSettings
from hub.worker.kafka import HubApp, kafka_brokers, kafka_credentials
from hub.worker.runtime import (
    DatabaseOpener,
    NotifyOpener,
    WorkerRuntime,
    open_postgres,
    open_postgres_notify,
    open_postgres_rule_versions,
)
from hub.worker.worker import Worker

__all__ = ["create_app", "kafka_brokers", "kafka_credentials"]


def create_app(
    settings: HubSettings,
    *,
    open_database: DatabaseOpener = open_postgres,
    datadir: Path | None = None,
    rules: RuleSet | None = None,
    open_notifications: NotifyOpener | None = None,
) -> faust.App:
    """The worker's Faust app. Loads the alert rules and the notifications file now
    (`hub.rules.RulesError`, `hub.notify.config.ConfigError` if invalid), so a bad file stops
    the worker before it joins the consumer group. Notifications go through PostgreSQL with the
    PostgreSQL database, and are off over another ``open_database`` (a test's stand-in) unless
    ``open_notifications`` is given."""
    if open_notifications is None and open_database is open_postgres:
        open_notifications = open_postgres_notify
    notifications = (
        None if settings.notifications_file is None else load_file(settings.notifications_file)
    )
    app = HubApp(
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
        seed=load_seed(settings.rules_file),
        # The dashboard's rule edits live in PostgreSQL: followed by a worker on PostgreSQL.
        open_rule_versions=open_postgres_rule_versions if open_database is open_postgres else None,
        open_notifications=open_notifications,
        notifications=notifications,
    )
    Worker(settings, runtime).register(app)
    return app
