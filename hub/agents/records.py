"""Kafka records read as untrusted: anything with write access to a topic could have produced
them, so every value is decoded with the wire models' full rules (the same reasons as the
edge's), held to the hub's own clock, and what cannot be used goes to the hub's dead-letter
topic with its reason, never into PostgreSQL, Redis or the dashboard."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from pydantic import BaseModel

from hub.agents.poison import describe_error
from hub.agents.retry import Retrier
from protocol.codec import DEFAULT_MAX_FUTURE_MS, DecodeError, decode_record

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

ERROR_HEADER_MAX: Final = 500
UNPROCESSABLE: Final = "unprocessable"  # the reason of a record that failed on its own


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class DeadLetterSink(Protocol):
    """Sends one raw record to the hub's dead-letter topic and returns once Kafka has it."""

    async def send(self, value: bytes, *, error: str) -> None: ...


@dataclass(frozen=True)
class TsBound:
    """How far ahead of the hub's clock a record's `ts` may be. The edge holds devices to its
    own clock, but a gateway's clock can be wrong too; a far-future ts would freeze what only
    moves forward (a device's state, its last-seen, its rules' windows)."""

    max_future_ms: int = DEFAULT_MAX_FUTURE_MS
    clock_ms: Callable[[], int] = wall_clock_ms

    def check(self, ts: int, now_ms: int) -> None:
        ahead = ts - now_ms
        if ahead > self.max_future_ms:
            raise DecodeError(
                "ts_out_of_range",
                f"ts {ts} is {ahead / 1000:+.0f} s ahead of the hub clock, "
                f"allowed +{self.max_future_ms // 1000} s",
            )


class Timestamped(Protocol):
    @property
    def ts(self) -> int: ...


class FromGateway(Protocol):
    @property
    def ts(self) -> int: ...

    @property
    def gateway_id(self) -> str: ...


T = TypeVar("T", bound=Timestamped)


def decode_records(
    raw_values: Sequence[bytes], model: type[M]
) -> tuple[list[tuple[bytes, M]], list[tuple[bytes, str]]]:
    """(raw, record) for every value that decodes, in order, and (raw, error) for the rest."""
    good: list[tuple[bytes, M]] = []
    invalid: list[tuple[bytes, str]] = []
    for raw in raw_values:
        try:
            good.append((raw, decode_record(model, raw)))
        except DecodeError as exc:
            invalid.append((raw, str(exc)[:ERROR_HEADER_MAX]))
    return good, invalid


def decode_timestamped(
    raw_values: Sequence[bytes], model: type[T], bound: TsBound
) -> tuple[list[tuple[bytes, T]], list[tuple[bytes, str]]]:
    """`decode_records`, and a record whose ts is too far ahead of the hub's clock is invalid."""
    decoded, invalid = decode_records(raw_values, model)  # type: ignore[type-var]
    now = bound.clock_ms()
    good: list[tuple[bytes, T]] = []
    for raw, record in decoded:
        try:
            bound.check(record.ts, now)
        except DecodeError as exc:
            invalid.append((raw, str(exc)[:ERROR_HEADER_MAX]))
            continue
        good.append((raw, record))
    return good, invalid


def unprocessable(exc: BaseException) -> str:
    """The `error` header of a record that decoded but failed to be processed on its own."""
    return f"{UNPROCESSABLE}: {describe_error(exc, ERROR_HEADER_MAX - len(UNPROCESSABLE) - 2)}"


def reason_of(error: str) -> str:
    """The reason word of an `error` header (`reason: detail`)."""
    return error.split(":", 1)[0]


@dataclass(frozen=True)
class DeadLetters:
    """Where a batch's bad records go: the hub's dead-letter topic (`sink`), each send waiting
    out Kafka outages (`retrier`; `on_retry` counts the retries)."""

    sink: DeadLetterSink
    retrier: Retrier
    on_retry: Callable[[], None] | None = None

    async def send(self, letters: Sequence[tuple[bytes, str]], *, what: str) -> None:
        """Each (raw value, error) to the dead-letter topic, in order; one log line per call,
        `{what}_dead_lettered`."""
        for raw, error in letters:
            await self.retrier.kafka(
                functools.partial(self.sink.send, raw, error=error),
                what="dlq_send",
                on_retry=self.on_retry,
                extra={"error_header": error},
            )
        if letters:
            log.warning(
                f"{what}_dead_lettered",
                extra={"count": len(letters), "first_error": letters[0][1]},
            )

    async def send_poison(
        self, poison: Sequence[tuple[tuple[bytes, FromGateway], Exception]], *, what: str
    ) -> None:
        """Records that decoded but failed on their own (`hub.agents.poison`): one error line
        each, `{what}_unprocessable`, then the dead-letter topic as `unprocessable: <error>`."""
        for (_, record), exc in poison:
            log.error(
                f"{what}_unprocessable",
                extra={
                    "device_id": getattr(record, "device_id", None),
                    "gateway_id": record.gateway_id,
                    "ts": record.ts,
                    "error": describe_error(exc),
                },
            )
        await self.send(
            [(raw, unprocessable(exc)) for (raw, _), exc in poison], what=f"unprocessable_{what}"
        )
