"""Poison records without services: isolation by bisection, the hub's untrusted decoding, and
each consumer (ingest, statuses, alerts, rules, rollups) skipping and counting what it cannot
use instead of stopping."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence

import asyncpg
import pytest

from hub.agents.aggregate import RollupCounters, rebuild_isolated, recompute_isolated
from hub.agents.ingest import IngestCounters, ingest_batch
from hub.agents.poison import isolate_poison
from hub.agents.records import TsBound, decode_records, decode_timestamped
from hub.agents.retry import Retrier, is_record_error
from hub.agents.status import StatusCounters, handle_statuses
from hub.rules import AlertEngine, load_rules
from hub.rules._checks import RateCheck, fmt
from hub.rules.model import RateOfChange
from protocol import DeviceStatus, NormalisedReading, encode
from tests.unit.test_hub_agents import FakeChannel, FakeProducer, FakeStore, no_sleep
from tests.unit.test_hub_ingest import FakeDlq, FakeLive

T0 = 1_764_268_800_000
MIN = 60_000


def reading(device_id: str, ts: int = T0, **metrics: float) -> NormalisedReading:
    return NormalisedReading(
        site="s1",
        device_id=device_id,
        type="cnc_spindle",
        ts=ts,
        seq=None,
        metrics=metrics or {"spindle_temp_c": 60.0},
        gateway_id="gw-1",
        received_ts=ts,
    )


def raw_reading(**overrides: object) -> bytes:
    body = json.loads(encode(reading("cnc-1")))
    body.update(overrides)
    return json.dumps(body).encode()


# -- isolation -----------------------------------------------------------------------------------


class Recorder:
    def __init__(self, poison: set[int], error: Exception | None = None) -> None:
        self.poison = poison
        self.error = error or ValueError("poison")
        self.calls: list[list[int]] = []
        self.done: list[int] = []

    async def __call__(self, items: Sequence[int]) -> None:
        self.calls.append(list(items))
        if self.poison & set(items):
            raise self.error
        self.done.extend(items)


async def test_a_clean_batch_is_processed_in_one_call() -> None:
    run = Recorder(set())
    assert await isolate_poison(list(range(100)), run, is_poison=is_record_error) == []
    assert run.calls == [list(range(100))]


async def test_poison_items_are_isolated_and_the_rest_processed_in_order() -> None:
    run = Recorder({3, 70})
    failed = await isolate_poison(list(range(100)), run, is_poison=is_record_error)
    assert [item for item, _ in failed] == [3, 70]
    assert all(isinstance(exc, ValueError) for _, exc in failed)
    assert run.done == [i for i in range(100) if i not in {3, 70}]
    assert len(run.calls) < 40  # bisection, not one call per item


async def test_an_error_no_record_causes_propagates() -> None:
    run = Recorder({3}, error=asyncpg.exceptions.UndefinedTableError('relation "readings"'))
    with pytest.raises(asyncpg.exceptions.UndefinedTableError):
        await isolate_poison(list(range(10)), run, is_poison=is_record_error)
    assert len(run.calls) == 1


@pytest.mark.parametrize(
    ("exc", "poison"),
    [
        (asyncpg.exceptions.NumericValueOutOfRangeError("value out of range: overflow"), True),
        (asyncpg.exceptions.CheckViolationError("check"), True),
        (asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"), True),
        (OverflowError("date value out of range"), True),
        (ValueError("Out of range float values are not JSON compliant"), True),
        (asyncpg.exceptions.UndefinedTableError("missing"), False),
        (asyncpg.exceptions.InsufficientPrivilegeError("denied"), False),
        (ConnectionRefusedError(111, "refused"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_what_a_record_can_be_to_blame_for(exc: Exception, poison: bool) -> None:
    assert is_record_error(exc) is poison


# -- untrusted decoding at the hub ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (raw_reading(metrics={"spindle_temp_c": 1e308}), "value_out_of_range"),
        (raw_reading(metrics={"spindle_temp_c": -1e308}), "value_out_of_range"),
        (raw_reading(metrics={'x" onmouseover="alert(1)': 1.0}), "bad_metric_name"),
        (raw_reading(metrics={"Temp C": 1.0}), "bad_metric_name"),
        (raw_reading(gateway_id="gw\u0000-1"), "wrong_shape"),
        (raw_reading(type="<img src=x>"), "wrong_shape"),
        (raw_reading(site="s" * 65), "wrong_shape"),
        (raw_reading(ts=10**20), "ts_out_of_range"),
        (raw_reading(ts=-1), "ts_out_of_range"),
        (raw_reading(seq=2**64), "wrong_shape"),
        (raw_reading(metrics={}), "no_metrics"),
        (b"\x00\x01", "invalid_json"),
    ],
)
def test_the_hub_dead_letters_what_the_edge_would_have_refused(raw: bytes, reason: str) -> None:
    good, invalid = decode_records([raw], NormalisedReading)
    assert good == []
    ((value, error),) = invalid
    assert value == raw
    assert error.split(":", 1)[0] == reason


def test_a_ts_too_far_ahead_of_the_hub_clock_is_refused() -> None:
    bound = TsBound(max_future_ms=3_600_000, clock_ms=lambda: T0)
    ahead = encode(reading("a", ts=T0 + 3_600_001))
    just = encode(reading("b", ts=T0 + 3_600_000))
    old = encode(reading("c", ts=T0 - 30 * 24 * 3_600_000))
    good, invalid = decode_timestamped([ahead, just, old], NormalisedReading, bound)
    assert [r.device_id for _, r in good] == ["b", "c"]
    assert invalid[0][0] == ahead
    assert invalid[0][1].startswith("ts_out_of_range: ts ")


# -- consumers -----------------------------------------------------------------------------------


class PickyDb:
    """Refuses any batch holding a reading of `device_id`, as PostgreSQL refuses bad data."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.written: list[str] = []

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object:
        if any(r.device_id == self.refused for r in readings):
            raise asyncpg.exceptions.NumericValueOutOfRangeError("value out of range: overflow")
        self.written.extend(r.device_id for r in readings)
        return None


async def test_ingest_dead_letters_the_reading_the_database_refuses_and_writes_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    db, dlq, counters = PickyDb("bad"), FakeDlq(events), IngestCounters()
    values = [encode(reading(d)) for d in ("a", "b", "bad", "c", "d")]
    committed: list[str] = []

    async def after_commit(readings: Sequence[NormalisedReading]) -> None:
        committed.extend(r.device_id for r in readings)

    with caplog.at_level(logging.ERROR):
        await ingest_batch(
            values,
            db=db,
            live=FakeLive(events),
            dlq_producer=dlq,
            counters=counters,
            retrier=Retrier(sleep=no_sleep),
            after_commit=after_commit,
        )
    assert db.written == committed == ["a", "b", "c", "d"]
    ((value, error),) = dlq.sent
    assert value == values[2]
    assert error.startswith("unprocessable: NumericValueOutOfRangeError: value out of range")
    assert counters.dead_lettered_total == {"unprocessable": 1}
    assert counters.readings_total == 4
    assert [r.getMessage() for r in caplog.records] == ["reading_unprocessable"]


class PickyStateDb:
    def __init__(self) -> None:
        self.applied: list[str] = []

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        if device_id == "bad":
            raise asyncpg.exceptions.DatetimeFieldOverflowError("date out of range")
        self.applied.append(device_id)
        return True


class QuietLive:
    async def set_device_state(self, *args: object) -> bool:
        return True

    async def set_gateway_state(self, *args: object) -> bool:
        return True


async def test_a_status_the_database_refuses_is_dead_lettered_the_others_applied() -> None:
    from hub.agents.alerts import AlertPipeline

    engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
    alerts = AlertPipeline(
        engine,
        store=FakeStore(),
        channel=FakeChannel(),
        producer=FakeProducer(),
        retrier=Retrier(sleep=no_sleep),
    )
    db, dlq, counters = PickyStateDb(), FakeDlq([]), StatusCounters()
    statuses = [
        encode(DeviceStatus(site="s1", device_id=d, state="online", ts=T0, gateway_id="gw-1"))
        for d in ("a", "bad", "b")
    ]
    bound = TsBound(clock_ms=lambda: T0)
    await handle_statuses(
        statuses,
        db=db,
        live=QuietLive(),
        alerts=alerts,
        dlq=dlq,
        counters=counters,
        bound=bound,
        retrier=Retrier(sleep=no_sleep),
    )
    assert set(db.applied) == {"a", "b"}  # "a" twice: the whole batch was tried first
    assert [value for value, _ in dlq.sent] == [statuses[1]]
    assert dlq.sent[0][1].startswith("unprocessable: DatetimeFieldOverflowError")
    assert counters.dead_lettered_total == 1


def test_fmt_never_raises_on_what_a_rule_may_compute() -> None:
    assert [fmt(v) for v in (math.inf, -math.inf, math.nan)] == ["inf", "-inf", "nan"]
    assert fmt(2.0) == "2"
    assert fmt(1e300) == "1e+300"


def test_a_rate_that_overflows_gives_no_verdict() -> None:
    check = RateCheck(RateOfChange("r", "t", max_per_s=1.0, window_samples=2))
    assert check.update(0, -1.7e308, None) is None
    assert check.update(1, 1.7e308, None) is None  # (1.7e308 + 1.7e308) / 0.001 s = inf


def test_a_rule_that_fails_skips_that_evaluation_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.rules import _checks

    engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
    real = _checks.ThresholdCheck.update

    def update(self: _checks.ThresholdCheck, ts: int, value: float, active: object) -> object:
        if self.rule.metric == "spindle_temp_c":
            raise ZeroDivisionError("a bug meets an odd value")
        return real(self, ts, value, active)  # type: ignore[arg-type]

    monkeypatch.setattr(_checks.ThresholdCheck, "update", update)
    with caplog.at_level(logging.ERROR):
        out = engine.observe(reading("cnc-1", spindle_temp_c=99.0, vibration_mm_s=50.0))
    assert engine.evaluation_errors_total == 1
    assert [t.metric for t in out] == ["vibration_mm_s"]  # the other rule still ran
    assert [r.getMessage() for r in caplog.records] == ["rule_evaluation_failed"]


async def test_an_alert_transition_the_store_refuses_is_skipped_and_counted() -> None:
    from hub.agents.alerts import AlertPipeline

    class Refusing(FakeStore):
        async def apply_alert(self, t):  # type: ignore[no-untyped-def]
            if t.device_id == "bad":
                raise asyncpg.exceptions.NumericValueOutOfRangeError("out of range")
            return await super().apply_alert(t)

    engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
    store = Refusing()
    alerts = AlertPipeline(
        engine,
        store=store,
        channel=FakeChannel(),
        producer=FakeProducer(),
        retrier=Retrier(sleep=no_sleep),
    )
    await alerts.observe_readings(
        [reading("bad", spindle_temp_c=99.0), reading("good", spindle_temp_c=99.0)]
    )
    assert alerts.counters.failed_total == 1
    assert [a.split(":")[1] for a in store.applied] == ["good"]


class RollupDb:
    """Fails any call touching the poisoned bucket, as avg() over ±1e308 does."""

    def __init__(self, poisoned: tuple[str, str, int]) -> None:
        self.poisoned = poisoned
        self.recomputed: list[tuple[str, str, int]] = []
        self.rebuilt: list[tuple[int, int]] = []

    async def recompute_rollups(self, buckets: Iterable[tuple[str, str, int]]) -> int:
        wanted = list(buckets)
        if self.poisoned in wanted:
            raise asyncpg.exceptions.NumericValueOutOfRangeError("value out of range: overflow")
        self.recomputed.extend(wanted)
        return len(wanted)

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        assert until_ms is not None
        if since_ms <= self.poisoned[2] < until_ms:
            raise asyncpg.exceptions.NumericValueOutOfRangeError("value out of range: overflow")
        self.rebuilt.append((since_ms, until_ms))
        return (until_ms - since_ms) // MIN

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[tuple[str, str, int]]:
        return [("bad", "t", since_ms), ("fine", "t", since_ms)]


async def test_a_rollup_bucket_that_cannot_be_computed_is_skipped() -> None:
    db, counters = RollupDb(("a", "t", T0 + MIN)), RollupCounters()
    buckets = [("a", "t", T0), ("a", "t", T0 + MIN), ("b", "t", T0 + MIN), ("b", "t", T0)]
    await recompute_isolated(db, buckets, counters, is_poison=is_record_error)
    assert db.recomputed == [("a", "t", T0), ("b", "t", T0 + MIN), ("b", "t", T0)]
    assert counters.skipped_total == 1


async def test_the_startup_rebuild_skips_just_the_bucket_that_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db, counters = RollupDb(("bad", "t", T0 + 7 * MIN)), RollupCounters()
    with caplog.at_level(logging.ERROR):
        written = await rebuild_isolated(db, T0, T0 + 20 * MIN, counters, is_poison=is_record_error)
    assert counters.skipped_total == 1
    assert written == 19 + 1  # 19 whole minutes, and the healthy bucket of the poisoned one
    covered = sorted(m for start, end in db.rebuilt for m in range(start, end, MIN))
    assert covered == [T0 + i * MIN for i in range(20) if i != 7]
    assert db.recomputed == [("fine", "t", T0 + 7 * MIN)]
    (skipped,) = caplog.records
    assert skipped.getMessage() == "rollup_skipped"
    assert (skipped.__dict__["device_id"], skipped.__dict__["bucket_ms"]) == ("bad", T0 + 7 * MIN)
