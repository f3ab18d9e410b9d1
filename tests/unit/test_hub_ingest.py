"""The ingest batch function with in-memory fakes: decoding, dead letters, retries, ordering."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from hub.agents.ingest import IngestCounters, decode_batch, ingest_batch
from hub.agents.records import TsBound
from hub.agents.retry import Retrier, is_transient_db_error, is_transient_kafka_error
from protocol import NormalisedReading, encode, encode_telemetry_batch
from protocol.models import MAX_BATCH_BYTES


def reading(device_id: str = "press-01", ts: int = 1_764_268_800_000, **metrics: float) -> bytes:
    return encode(
        NormalisedReading(
            site="site-1",
            device_id=device_id,
            type="hydraulic_press",
            ts=ts,
            seq=1,
            metrics=metrics or {"ram_pressure_bar": 180.5},
            gateway_id="gw-1",
            received_ts=ts + 5,
        )
    )


class FakeDb:
    def __init__(self, events: list[str], failures: Sequence[BaseException] = ()) -> None:
        self.events = events
        self.failures = list(failures)
        self.batches: list[list[NormalisedReading]] = []

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object:
        self.events.append("db_attempt")
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(list(readings))
        self.events.append("db_committed")
        return None


class FakeLive:
    def __init__(self, events: list[str], available: bool = True) -> None:
        self.events = events
        self.available = available

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool:
        self.events.append(f"latest:{len(readings)}")
        return self.available

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool:
        self.events.append(f"publish:{len(readings)}")
        return self.available


class FakeDlq:
    def __init__(self, events: list[str], failures: Sequence[BaseException] = ()) -> None:
        self.events = events
        self.failures = list(failures)
        self.sent: list[tuple[bytes, str]] = []

    async def send(self, value: bytes, *, error: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((value, error))
        self.events.append("dlq")


class Harness:
    def __init__(
        self,
        db_failures: Sequence[BaseException] = (),
        dlq_failures: Sequence[BaseException] = (),
        live_available: bool = True,
    ) -> None:
        self.events: list[str] = []
        self.db = FakeDb(self.events, db_failures)
        self.live = FakeLive(self.events, live_available)
        self.dlq = FakeDlq(self.events, dlq_failures)
        self.counters = IngestCounters()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def run(self, values: Sequence[bytes]) -> None:
        await ingest_batch(
            values,
            db=self.db,
            live=self.live,
            dlq_producer=self.dlq,
            counters=self.counters,
            retrier=Retrier(sleep=self.sleep),
        )


async def test_valid_batch_goes_to_db_then_redis() -> None:
    h = Harness()
    await h.run([reading("press-01"), reading("press-02", spindle=1.0)])
    assert [len(b) for b in h.db.batches] == [2]
    assert h.db.batches[0][1].device_id == "press-02"
    assert h.events == ["db_attempt", "db_committed", "latest:2", "publish:2"]
    assert h.counters.batches_total == 1
    assert h.counters.readings_total == 2
    assert not h.dlq.sent


async def test_undecodable_values_are_dead_lettered_with_reason() -> None:
    h = Harness()
    good = reading()
    not_json = b"{not json"
    wrong_shape = b'{"v": 1, "site": "s"}'
    await h.run([not_json, good, wrong_shape])
    assert [value for value, _ in h.dlq.sent] == [not_json, wrong_shape]
    errors = [error for _, error in h.dlq.sent]
    assert errors[0].startswith("invalid_json: ")
    assert errors[1].startswith("wrong_shape: device_id: ")
    assert h.counters.dead_lettered_total == {"invalid_json": 1, "wrong_shape": 1}
    # Dead letters are safely in Kafka before the good readings are written.
    assert h.events == ["dlq", "dlq", "db_attempt", "db_committed", "latest:1", "publish:1"]
    assert h.counters.readings_total == 1


async def test_only_bad_values_touch_neither_db_nor_redis() -> None:
    h = Harness()
    await h.run([b"\xff\xfe", b"[]"])
    assert len(h.dlq.sent) == 2
    assert h.events == ["dlq", "dlq"]
    assert h.counters.batches_total == 1


async def test_db_outage_is_waited_out_one_log_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage: list[BaseException] = [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    ]
    h = Harness(db_failures=outage)
    with caplog.at_level(logging.INFO, logger="hub.agents"):
        await h.run([reading()])
    assert h.events == [
        "db_attempt",
        "db_attempt",
        "db_attempt",
        "db_attempt",
        "db_committed",
        "latest:1",
        "publish:1",
    ]
    assert len(h.sleeps) == 3
    assert h.sleeps[0] <= h.sleeps[2]  # backing off
    failed = [r for r in caplog.records if r.getMessage() == "db_write_failed"]
    assert [r.__dict__["attempt"] for r in failed] == [1, 2, 3]
    assert "CannotConnectNowError" in failed[1].__dict__["error"]
    recovered = [r for r in caplog.records if r.getMessage() == "db_write_recovered"]
    assert recovered[0].__dict__["attempts"] == 4
    assert h.counters.db_retries_total == 3


async def test_backoff_is_capped() -> None:
    h = Harness(db_failures=[OSError("down")] * 12)
    await ingest_batch(
        [reading()],
        db=h.db,
        live=h.live,
        dlq_producer=h.dlq,
        counters=h.counters,
        retrier=Retrier(sleep=h.sleep, backoff_max_s=4.0),
    )
    assert max(h.sleeps) <= 4.0
    assert len(h.db.batches) == 1


async def test_a_bug_in_the_db_layer_propagates() -> None:
    h = Harness(db_failures=[asyncpg.exceptions.UndefinedTableError('relation "x"')])
    with pytest.raises(asyncpg.exceptions.UndefinedTableError):
        await h.run([reading()])
    assert h.sleeps == []
    assert "latest:1" not in h.events


async def test_dlq_outage_is_waited_out() -> None:
    h = Harness(dlq_failures=[KafkaConnectionError("no broker")] * 2)
    await h.run([b"nope", reading()])
    assert len(h.dlq.sent) == 1
    assert h.counters.dlq_retries_total == 2
    assert h.events[:2] == ["dlq", "db_attempt"]


async def test_redis_away_does_not_stop_ingest() -> None:
    h = Harness(live_available=False)
    await h.run([reading()])
    assert h.counters.readings_total == 1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.TooManyConnectionsError("too many"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating"), True),
        (asyncpg.exceptions.SerializationError("could not serialize"), True),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), True),
        (asyncpg.exceptions.UniqueViolationError("dup"), False),
        (asyncpg.exceptions.UndefinedTableError("missing"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_db_errors(exc: BaseException, transient: bool) -> None:
    assert is_transient_db_error(exc) is transient


def test_transient_kafka_errors() -> None:
    assert is_transient_kafka_error(KafkaConnectionError())
    assert not is_transient_kafka_error(ValueError())


def test_decode_batch_keeps_order() -> None:
    readings, invalid = decode_batch([reading("a"), b"x", reading("b")])
    assert [r.device_id for _, r in readings] == ["a", "b"]
    assert [raw for raw, _ in invalid] == [b"x"]


# -- version 2 values: several readings of one device in one Kafka record ------------------------


def packed(*values: bytes) -> bytes:
    return encode_telemetry_batch(values)


async def test_both_versions_are_read_in_one_batch_in_order() -> None:
    h = Harness()
    await h.run([reading("a", ts=1), packed(reading("b", ts=1), reading("b", ts=2)), reading("c")])
    ((a, b1, b2, c),) = h.db.batches
    assert [(r.device_id, r.ts) for r in (a, b1, b2)] == [("a", 1), ("b", 1), ("b", 2)]
    assert c.device_id == "c"
    assert h.counters.readings_total == 4
    assert h.counters.records_total == 3


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # One bad reading refuses the whole value, with the reason it would have alone.
        (
            packed(reading("a"), reading("a", bad=2.0).replace(b"2.0", b"1e999")),
            "non_finite_number",
        ),
        (packed(reading("a"), reading("b")), "wrong_shape"),  # two devices in one value
        (b'{"v":2,"readings":[]}', "wrong_shape"),
        (b'{"v":3,"readings":[]}', "wrong_shape"),  # a version this hub does not know
        (b'{"v":2,"readings":[' + b"1" * MAX_BATCH_BYTES + b"]}", "payload_too_large"),
    ],
)
async def test_a_bad_version_2_value_is_dead_lettered_whole(value: bytes, reason: str) -> None:
    h = Harness()
    await h.run([value, reading("ok")])
    assert h.dlq.sent == [(value, h.dlq.sent[0][1])]
    assert h.dlq.sent[0][1].startswith(f"{reason}: ")
    assert h.counters.dead_lettered_total == {reason: 1}
    assert [r.device_id for r in h.db.batches[0]] == ["ok"]


def test_a_reading_too_far_ahead_leaves_its_value_alone_as_a_version_1_value() -> None:
    bound = TsBound(max_future_ms=1_000, clock_ms=lambda: 10_000)
    ahead = reading("a", ts=20_000)
    good, invalid = decode_batch([packed(reading("a", ts=9_000), ahead)], bound)
    assert [r.ts for _, r in good] == [9_000]
    assert good[0][0] is None  # no value of its own: made when it is dead-lettered
    ((value, error),) = invalid
    assert value == ahead
    assert error.startswith("ts_out_of_range: ")


async def test_a_poison_reading_of_a_version_2_value_is_dead_lettered_alone() -> None:
    class Picky(FakeDb):
        async def write_readings(self, readings: Sequence[NormalisedReading]) -> object:
            if any(r.device_id == "a" and r.ts == 2 for r in readings):
                raise asyncpg.NumericValueOutOfRangeError("value out of range")
            return await super().write_readings(readings)

    h = Harness()
    h.db = Picky(h.events)
    bad = reading("a", ts=2)
    await h.run([packed(reading("a", ts=1), bad, reading("a", ts=3))])
    assert [(value, error.split(":")[0]) for value, error in h.dlq.sent] == [(bad, "unprocessable")]
    assert sorted(r.ts for batch in h.db.batches for r in batch) == [1, 3]
