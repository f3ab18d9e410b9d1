"""The hub's Faust application: its topics, its agents, and the resources they hold.

Findings that shape this module (faust-streaming 0.15.3, aiokafka 0.14, Kafka 4.0.1; see
tests/integration/test_hub_worker.py):

* `stream.take()` acknowledges a batch's events when the agent asks for the next batch, and
  also when the agent body raises; an agent crash then commits. So the ingest body never
  raises for an outage (it waits), and on anything else the process exits without committing.
* Concurrency stays 1: with more actors Faust can commit past an event still being processed
  (faust-streaming issue #606, an off-by-one in `Consumer._new_offset`).
* On SIGTERM the worker stops fetching, waits for the batch in flight to finish
  (`stream_wait_empty`, no time limit), commits, leaves the group and exits 0.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final, NoReturn

import faust

from hub.agents.ingest import (
    IngestCounters,
    ReadingWriter,
    ingest_batch,
    is_transient_db_error,
    retry_transient,
)
from hub.settings import HUB_DLQ_TOPIC, HubSettings
from hub.storage.live import LiveStore
from protocol import topics

log = logging.getLogger(__name__)

# sysexits EX_SOFTWARE: an internal error; the supervisor (Kubernetes) restarts the process.
EXIT_WITHOUT_COMMIT: Final = 70
STATS_INTERVAL_S: Final = 60.0

DatabaseOpener = Callable[[HubSettings], AbstractAsyncContextManager[ReadingWriter]]


@asynccontextmanager
async def open_postgres(settings: HubSettings) -> AsyncIterator[ReadingWriter]:
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


def kafka_brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def create_app(
    settings: HubSettings,
    *,
    open_database: DatabaseOpener = open_postgres,
    datadir: Path | None = None,
) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=kafka_brokers(settings.kafka_bootstrap),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        web_enabled=settings.worker_web_port != 0,
        web_port=settings.worker_web_port or 6066,
        producer_acks=-1,
        # Drain the batch in flight on shutdown before the final commit (the default, stated).
        stream_wait_empty=True,
        # Faust creates its data directory even with the memory store; keep it out of the cwd.
        datadir=str(datadir or Path(tempfile.gettempdir()) / f"{settings.consumer_group}-faust"),
    )
    counters = IngestCounters()
    live_stores: list[LiveStore] = []

    # internal=True only makes Faust create the topic (with topic_partitions) before it
    # subscribes, so a hub that starts before any gateway has produced still gets assigned.
    telemetry = app.topic(topics.TELEMETRY, key_type=bytes, value_type=bytes, internal=True)
    dead_letters = app.topic(HUB_DLQ_TOPIC, key_type=bytes, value_type=bytes, internal=True)

    async def ingest(stream: faust.StreamT[bytes]) -> None:
        try:
            async with AsyncExitStack() as resources:
                # PostgreSQL may be away when the worker starts: wait for it like for a write.
                db = await retry_transient(
                    lambda: resources.enter_async_context(open_database(settings)),
                    what="db_connect",
                    is_transient=is_transient_db_error,
                )
                live = await resources.enter_async_context(LiveStore.from_url(settings.redis_url))
                live_stores.append(live)
                resources.callback(live_stores.remove, live)
                await dead_letters.maybe_declare()
                dlq = FaustDeadLetters(app)
                async for batch in stream.take(
                    settings.ingest_batch_max, within=settings.ingest_batch_wait_s
                ):
                    await ingest_batch(
                        _as_bytes(batch), db=db, live=live, dlq_producer=dlq, counters=counters
                    )
        except Exception:
            log.critical("ingest_failed", extra={"action": "exit_without_commit"}, exc_info=True)
            _exit_without_commit()

    app.agent(telemetry, name="ingest", concurrency=1)(ingest)

    async def log_stats() -> None:
        redis_failed = sum(store.stats.failed_total for store in live_stores)
        log.info(
            "ingest_stats",
            extra={
                "batches_total": counters.batches_total,
                "readings_total": counters.readings_total,
                "dead_lettered_total": sum(counters.dead_lettered_total.values()),
                "db_retries_total": counters.db_retries_total,
                "redis_failed_total": redis_failed,
            },
        )

    app.timer(STATS_INTERVAL_S, name="ingest_stats")(log_stats)

    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: Iterable[Any] = args[0] if args else ()
        mine = sorted(
            f"{tp.topic}[{tp.partition}]" for tp in assigned if tp.topic == topics.TELEMETRY
        )
        log.info("partitions_assigned", extra={"partitions": ",".join(mine) or "-"})

    app.on_partitions_assigned.connect(on_assigned)
    return app


def _as_bytes(values: Sequence[object]) -> list[bytes]:
    # value_serializer="raw" hands over bytes; anything else is a wiring mistake.
    out = [v for v in values if isinstance(v, bytes)]
    if len(out) != len(values):
        raise TypeError("telemetry values must arrive as raw bytes")
    return out


def _exit_without_commit() -> NoReturn:
    """Faust would acknowledge (and then commit) the batch if the agent raised: exit instead,
    so the batch is redelivered to whichever worker takes the partitions next."""
    logging.shutdown()
    os._exit(EXIT_WITHOUT_COMMIT)
