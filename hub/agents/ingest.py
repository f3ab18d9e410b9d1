"""Ingest: one batch of `iot.telemetry` values into PostgreSQL, then Redis.

A plain async function, so it is tested without Faust or Kafka; `hub.app` calls it from the
agent for every batch. Faust acknowledges the batch's offsets once this returns, so it returns
only once the batch is durable: it never raises for a database or Kafka outage (it waits and
retries), nor for one bad record (it dead-letters it). Order of effects:

1. decode every value as untrusted (`hub.agents.records`); one that is not a valid reading, or
   whose ts is too far ahead of the hub's clock, goes to `iot.hub.dlq` with an `error` header;
2. write the readings to PostgreSQL (idempotent, so a retry or a replay is harmless);
3. update Redis (latest values, last-seen) and publish to the live channel: best effort;
4. `after_commit` with the batch's readings (the worker marks rollup buckets and feeds the
   alert engine there), so whatever derives from readings sees only committed ones.

Steps 2 to 4 run under `isolate_poison`: if they fail for a reason a retry cannot outlast (the
database refuses a row, a bug meets an odd value), the batch is bisected, the readings that
fail alone go to the dead-letter topic as `unprocessable`, and the others are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.agents.poison import isolate_poison
from hub.agents.records import (
    UNPROCESSABLE,
    DeadLetters,
    DeadLetterSink,
    TsBound,
    decode_timestamped,
    reason_of,
)
from hub.agents.retry import Retrier, is_record_error
from protocol import NormalisedReading

log = logging.getLogger(__name__)


class ReadingWriter(Protocol):
    """What ingest needs from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object: ...


class LiveSink(Protocol):
    """What ingest needs from the Redis adapter (`hub.storage.live.LiveStore`)."""

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool: ...

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool: ...


@dataclass
class IngestCounters:
    batches_total: int = 0
    readings_total: int = 0
    dead_lettered_total: Counter[str] = field(default_factory=Counter)  # by reason
    db_retries_total: int = 0
    dlq_retries_total: int = 0


def decode_batch(
    raw_values: Sequence[bytes], bound: TsBound | None = None
) -> tuple[list[tuple[bytes, NormalisedReading]], list[tuple[bytes, str]]]:
    """(raw, reading) in order, and (raw value, error) for every value that is not a usable
    normalised reading."""
    return decode_timestamped(raw_values, NormalisedReading, bound or TsBound())


async def ingest_batch(
    raw_values: Sequence[bytes],
    *,
    db: ReadingWriter,
    live: LiveSink,
    dlq_producer: DeadLetterSink,
    counters: IngestCounters,
    retrier: Retrier,
    bound: TsBound | None = None,
    after_commit: Callable[[Sequence[NormalisedReading]], Awaitable[None]] | None = None,
) -> None:
    decoded, invalid = decode_batch(raw_values, bound)

    def dlq_retried() -> None:
        counters.dlq_retries_total += 1

    def db_retried() -> None:
        counters.db_retries_total += 1

    async def process(chunk: Sequence[tuple[bytes, NormalisedReading]]) -> None:
        readings = [reading for _, reading in chunk]
        await retrier.db(
            lambda: db.write_readings(readings),
            what="db_write",
            on_retry=db_retried,
            extra={"readings": len(readings)},
        )
        # Best effort: LiveStore swallows and counts its own outages.
        await live.update_latest(readings)
        await live.publish_readings(readings)
        if after_commit is not None:
            await after_commit(readings)
        counters.readings_total += len(readings)

    dead_letters = DeadLetters(dlq_producer, retrier, on_retry=dlq_retried)
    await dead_letters.send(invalid, what="undecodable_readings")
    counters.dead_lettered_total.update(reason_of(error) for _, error in invalid)
    # Transient errors never reach the isolation: `process` waits them out itself.
    poison = await isolate_poison(decoded, process, is_poison=is_record_error)
    await dead_letters.send_poison(poison, what="reading")
    if poison:
        counters.dead_lettered_total[UNPROCESSABLE] += len(poison)
    counters.batches_total += 1


class OneAhead:
    """Runs one job at a time in the background, in submission order: the agent collects the
    next batch while the previous one is written. `submit` waits for the job before."""

    def __init__(self) -> None:
        self._job: asyncio.Future[None] | None = None

    async def submit(self, job: Coroutine[Any, Any, None]) -> None:
        await self.drain()
        self._job = asyncio.ensure_future(job)

    async def drain(self) -> None:
        """Wait for the job in flight, if any (its exception, if any, propagates)."""
        job, self._job = self._job, None
        if job is not None:
            await job
