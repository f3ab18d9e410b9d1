"""Ingest: one batch of `iot.telemetry` values into PostgreSQL, then Redis.

A plain async function, so it is tested without Faust or Kafka; `hub.app` calls it from the
agent for every `stream.take()` batch. Faust acknowledges the batch's offsets when the agent
asks for the next batch, and equally when the body raises (verified with faust-streaming
0.15.3), so this function returns only once the batch is durable: it never raises for a
database or Kafka outage, it waits and retries. Order of effects:

1. decode every value; an undecodable one goes to `iot.hub.dlq` with an `error` header;
2. write the readings to PostgreSQL (idempotent, so a retry or a replay is harmless);
3. update Redis (latest values, last-seen) and publish to the live channel: best effort;
4. `after_commit` with the batch's readings (the worker marks rollup buckets and feeds the
   alert engine there), so whatever derives from readings sees only committed ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from edge_gateway.backoff import Backoff
from hub.storage.postgres import TRANSIENT_ERRORS
from protocol import NormalisedReading

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

ERROR_HEADER_MAX: Final = 500


class ReadingWriter(Protocol):
    """What ingest needs from the PostgreSQL adapter (`hub.storage.postgres.Database`)."""

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object: ...


class LiveSink(Protocol):
    """What ingest needs from the Redis adapter (`hub.storage.live.LiveStore`)."""

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool: ...

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool: ...


class DeadLetterSink(Protocol):
    """Sends one raw record to the hub's dead-letter topic and returns once Kafka has it."""

    async def send(self, value: bytes, *, error: str) -> None: ...


@dataclass
class IngestCounters:
    batches_total: int = 0
    readings_total: int = 0
    dead_lettered_total: Counter[str] = field(default_factory=Counter)  # by reason
    db_retries_total: int = 0
    dlq_retries_total: int = 0


def is_transient_db_error(exc: BaseException) -> bool:
    """Errors a retry can outlast (the database away, restarting, overloaded; a lost deadlock),
    as `hub.storage.postgres` classifies them."""
    return isinstance(exc, TRANSIENT_ERRORS)


def is_transient_kafka_error(exc: BaseException) -> bool:
    # aiokafka's errors all derive from KafkaError; imported here to keep the module importable
    # (and unit-testable) on its own.
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError | OSError)


def describe_invalid(exc: ValidationError) -> str:
    """A short `reason: detail` for the `error` header, in the style of the edge's reasons."""
    first = exc.errors(include_url=False, include_input=False)[0]
    if first["type"] == "json_invalid":
        detail = f"invalid_json: {first['msg']}"
    else:
        where = ".".join(str(part) for part in first["loc"]) or "value"
        detail = f"wrong_shape: {where}: {first['msg']}"
    return detail[:ERROR_HEADER_MAX]


def decode_records(
    raw_values: Sequence[bytes], model: type[M]
) -> tuple[list[M], list[tuple[bytes, str]]]:
    """Decoded records, and (raw value, error) for every value that is not one."""
    good: list[M] = []
    invalid: list[tuple[bytes, str]] = []
    for raw in raw_values:
        try:
            good.append(model.model_validate_json(raw))
        except ValidationError as exc:
            invalid.append((raw, describe_invalid(exc)))
    return good, invalid


def decode_batch(
    raw_values: Sequence[bytes],
) -> tuple[list[NormalisedReading], list[tuple[bytes, str]]]:
    """Readings, and (raw value, error) for every value that is not a normalised reading."""
    return decode_records(raw_values, NormalisedReading)


async def ingest_batch(
    raw_values: Sequence[bytes],
    *,
    db: ReadingWriter,
    live: LiveSink,
    dlq_producer: DeadLetterSink,
    counters: IngestCounters,
    backoff_max_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    is_transient_db: Callable[[BaseException], bool] = is_transient_db_error,
    is_transient_dlq: Callable[[BaseException], bool] = is_transient_kafka_error,
    after_commit: Callable[[Sequence[NormalisedReading]], Awaitable[None]] | None = None,
) -> None:
    readings, invalid = decode_batch(raw_values)

    def dlq_retried() -> None:
        counters.dlq_retries_total += 1

    def db_retried() -> None:
        counters.db_retries_total += 1

    for raw, error in invalid:
        await retry_transient(
            functools.partial(dlq_producer.send, raw, error=error),
            what="dlq_send",
            is_transient=is_transient_dlq,
            on_retry=dlq_retried,
            backoff_max_s=backoff_max_s,
            sleep=sleep,
            extra={"error_header": error},
        )
        counters.dead_lettered_total[error.split(":", 1)[0]] += 1
    if invalid:
        log.warning(
            "undecodable_records_dead_lettered",
            extra={"count": len(invalid), "first_error": invalid[0][1]},
        )
    if readings:
        await retry_transient(
            functools.partial(db.write_readings, readings),
            what="db_write",
            is_transient=is_transient_db,
            on_retry=db_retried,
            backoff_max_s=backoff_max_s,
            sleep=sleep,
            extra={"readings": len(readings)},
        )
        # Best effort: LiveStore swallows and counts its own outages.
        await live.update_latest(readings)
        await live.publish_readings(readings)
        if after_commit is not None:
            await after_commit(readings)
    counters.batches_total += 1
    counters.readings_total += len(readings)


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


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    is_transient: Callable[[BaseException], bool],
    on_retry: Callable[[], None] | None = None,
    backoff_max_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    extra: dict[str, object] | None = None,
) -> T:
    """Run `op` until it succeeds, waiting with backoff after each transient failure (one log
    line `{what}_failed` per attempt, `{what}_recovered` at the end). Anything else propagates:
    it is a bug, not an outage."""
    fields = extra or {}
    backoff = Backoff(initial_s=0.5, max_s=backoff_max_s)
    while True:
        try:
            result = await op()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = backoff.next_delay()
            if on_retry is not None:
                on_retry()
            log.warning(
                f"{what}_failed",
                extra={
                    **fields,
                    "attempt": backoff.attempts,
                    "retry_in_s": round(delay, 2),
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            await sleep(delay)
            continue
        if backoff.attempts:
            log.info(f"{what}_recovered", extra={**fields, "attempts": backoff.attempts + 1})
        return result
