"""The `Retrier`: PostgreSQL and Kafka outages waited out with its predicates and backoff."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from hub.agents.retry import Retrier


def failing(errors: list[BaseException], result: str = "done") -> Callable[[], Awaitable[str]]:
    async def op() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return op


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_db_and_kafka_outages_are_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps, retries = Sleeps(), []
    retrier = Retrier(backoff_max_s=1.0, sleep=sleeps)
    db_down: list[BaseException] = [asyncpg.CannotConnectNowError("starting up")] * 3
    with caplog.at_level(logging.INFO, logger="hub.agents.retry"):
        got = await retrier.db(
            failing(db_down), what="db_op", on_retry=lambda: retries.append(1), extra={"n": 7}
        )
        assert await retrier.kafka(failing([KafkaConnectionError()]), what="kafka_op") == "done"
    assert got == "done"
    assert (len(sleeps.delays), len(retries)) == (4, 3)
    assert max(sleeps.delays) <= 1.0  # capped at backoff_max_s
    failed = [r for r in caplog.records if r.getMessage() == "db_op_failed"]
    assert [(r.__dict__["attempt"], r.__dict__["n"]) for r in failed] == [(1, 7), (2, 7), (3, 7)]
    assert [r.getMessage() for r in caplog.records][-2:] == [
        "kafka_op_failed",
        "kafka_op_recovered",
    ]


async def test_other_errors_pass_through_at_once() -> None:
    sleeps = Sleeps()
    retrier = Retrier(sleep=sleeps)
    with pytest.raises(KafkaConnectionError):  # an outage of Kafka, not of the database
        await retrier.db(failing([KafkaConnectionError()]), what="db_op")
    with pytest.raises(asyncpg.CannotConnectNowError):
        await retrier.kafka(failing([asyncpg.CannotConnectNowError("x")]), what="kafka_op")
    with pytest.raises(ValueError, match="bug"):
        await retrier.db(failing([ValueError("bug")]), what="db_op")
    assert sleeps.delays == []


async def test_the_predicates_are_the_retriers_own() -> None:
    sleeps = Sleeps()
    retrier = Retrier(sleep=sleeps, is_transient_db=lambda exc: isinstance(exc, KeyError))
    assert await retrier.db(failing([KeyError("busy")]), what="db_op") == "done"
    with pytest.raises(OSError, match="refused"):
        await retrier.db(failing([OSError("refused")]), what="db_op")
    assert len(sleeps.delays) == 1
