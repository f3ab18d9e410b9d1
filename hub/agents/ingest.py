"""Ingest: one batch of `iot.telemetry` values into PostgreSQL, then Redis.

A plain async function, so it is tested without Faust or Kafka; `hub.app` calls it from the
agent for every batch. Faust acknowledges the batch's offsets once this returns, so it returns
only once the batch is durable: it never raises for a database or Kafka outage (it waits and
retries), nor for one bad record (it dead-letters it). Order of effects:

1. decode every value as untrusted (`protocol.decode_telemetry_value`: a version 1 value is one
   reading, a version 2 value several readings of one device); a value that is not valid goes
   to `iot.hub.dlq` as it is, with an `error` header; so does a reading whose ts is too far
   ahead of the hub's clock (a reading out of a version 2 value alone, as its version 1 value);
2. write the readings to PostgreSQL (idempotent, so a retry or a replay is harmless);
3. update Redis (latest values, last-seen) and publish to the live channel: best effort;
4. `after_commit` with the batch's readings (the worker marks rollup buckets and feeds the
   alert engine there), so whatever derives from readings sees only committed ones.

Steps 2 to 4 run under `isolate_poison`: if they fail for a reason a retry cannot outlast (the
database refuses a row, a bug meets an odd value), the batch is bisected, the readings that
fail alone go to the dead-letter topic as `unprocessable` (as above, a reading out of a version 2
value alone), and the others are written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hub.agents.poison import isolate_poison
from hub.agents.records import (
    ERROR_HEADER_MAX,
    UNPROCESSABLE,
    DeadLetters,
    DeadLetterSink,
    TsBound,
    reason_of,
)
from hub.agents.retry import Retrier, is_record_error
from protocol import DecodeError, NormalisedReading, decode_telemetry_value, encode

# A decoded reading and the value that stands for it alone on the dead-letter topic: its Kafka
# record's value, or None for one of several readings of a version 2 value (its own version 1
# value is made when needed).
Decoded = tuple[bytes | None, NormalisedReading]

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
    records_total: int = 0  # Kafka records; fewer than readings with version 2 values
    readings_total: int = 0
    dead_lettered_total: Counter[str] = field(default_factory=Counter)  # by reason
    db_retries_total: int = 0
    dlq_retries_total: int = 0


def decode_batch(
    raw_values: Sequence[bytes], bound: TsBound | None = None
) -> tuple[list[Decoded], list[tuple[bytes, str]]]:
    """Every reading of the values (either version) in order, and (value, error) for every
    value that is not valid and every reading too far ahead of the hub's clock."""
    bound = bound or TsBound()
    now = bound.clock_ms()
    good: list[Decoded] = []
    invalid: list[tuple[bytes, str]] = []
    for raw in raw_values:
        try:
            readings = decode_telemetry_value(raw)
        except DecodeError as exc:
            invalid.append((raw, str(exc)[:ERROR_HEADER_MAX]))
            continue
        own = raw if len(readings) == 1 else None
        for reading in readings:
            try:
                bound.check(reading.ts, now)
            except DecodeError as exc:
                invalid.append((own or encode(reading), str(exc)[:ERROR_HEADER_MAX]))
                continue
            good.append((own, reading))
    return good, invalid


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

    async def process(chunk: Sequence[Decoded]) -> None:
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
    await dead_letters.send_poison(
        [((raw or encode(reading), reading), exc) for (raw, reading), exc in poison],
        what="reading",
    )
    if poison:
        counters.dead_lettered_total[UNPROCESSABLE] += len(poison)
    counters.batches_total += 1
    counters.records_total += len(raw_values)
