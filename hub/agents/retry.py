"""Waiting out outages: which errors a retry can outlast, the loop that retries them, and the
`Retrier` that holds how the hub retries (one per worker, handed to every agent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from hub.storage.postgres import RECORD_ERRORS, TRANSIENT_ERRORS
from iot_common.backoff import Backoff

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient_db_error(exc: BaseException) -> bool:
    """Errors a retry can outlast (the database away, restarting, overloaded; a lost deadlock),
    as `hub.storage.postgres` classifies them."""
    return isinstance(exc, TRANSIENT_ERRORS)


def is_record_error(exc: BaseException) -> bool:
    """Errors a record's values can cause: data the database refuses (`RECORD_ERRORS`), and
    our own code meeting an odd value (ValueError, which asyncpg's client-side encoding errors
    are too, and ArithmeticError: an overflow, a division by zero). Anything else is an outage
    or a fault of the system (a missing table, a revoked grant, a bug), which no record causes
    and for which the worker stops rather than dead-letter everything."""
    return isinstance(exc, (*RECORD_ERRORS, ValueError, ArithmeticError))


def is_transient_kafka_error(exc: BaseException) -> bool:
    # aiokafka's errors all derive from KafkaError; imported here to keep the module importable
    # (and unit-testable) on its own.
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError | OSError)


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


@dataclass(frozen=True)
class Retry:
    """`retry_transient` with all but the operation settled: `await retry(op, what=...)`."""

    is_transient: Callable[[BaseException], bool]
    backoff_max_s: float
    sleep: Callable[[float], Awaitable[None]]

    async def __call__(
        self,
        op: Callable[[], Awaitable[T]],
        *,
        what: str,
        on_retry: Callable[[], None] | None = None,
        extra: dict[str, object] | None = None,
    ) -> T:
        return await retry_transient(
            op,
            what=what,
            is_transient=self.is_transient,
            on_retry=on_retry,
            backoff_max_s=self.backoff_max_s,
            sleep=self.sleep,
            extra=extra,
        )


@dataclass(frozen=True)
class Retrier:
    """How the hub waits out outages: the backoff's cap, how it waits, and which errors of
    PostgreSQL and of Kafka a retry can outlast. `await retrier.db(op, what=...)` (and
    `retrier.kafka`) runs `op` under `retry_transient` with the matching predicate. The worker
    creates one and hands it to every agent; a test passes its own `sleep` (or predicates)."""

    backoff_max_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    is_transient_db: Callable[[BaseException], bool] = is_transient_db_error
    is_transient_kafka: Callable[[BaseException], bool] = is_transient_kafka_error

    @property
    def db(self) -> Retry:
        """Waits out PostgreSQL outages (`is_transient_db`)."""
        return Retry(self.is_transient_db, self.backoff_max_s, self.sleep)

    @property
    def kafka(self) -> Retry:
        """Waits out Kafka outages (`is_transient_kafka`)."""
        return Retry(self.is_transient_kafka, self.backoff_max_s, self.sleep)
