"""The worker's glue without services: rollup scheduling, the alert pipeline, status and
heartbeat handling, start-up and hourly maintenance, ingest's after-commit hook."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace

import asyncpg
import pytest

from hub.agents.aggregate import RollupScheduler, startup_rebuild_since_ms
from hub.agents.alerts import AlertPipeline, open_alerts
from hub.agents.ingest import IngestCounters, ingest_batch
from hub.agents.maintenance import maintain_partitions, prepare_schema
from hub.agents.retry import Retrier
from hub.agents.status import (
    StatusCounters,
    handle_edge_metrics,
    handle_statuses,
    newest_per_device,
)
from hub.rules import AlertEngine, AlertTransition, OpenAlert, load_rules
from hub.storage.alert_events import alert_event, event_key
from hub.storage.model import AlertRow, AlertTransitionLike
from hub.storage.redis_values import GatewayHealth, encode_gateway_health
from protocol import DeviceStatus, NormalisedReading, encode
from tests.support.readings import make_edge_metrics

T0 = 1_764_268_800_000  # a whole minute
MIN = 60_000


async def no_sleep(_: float) -> None:
    return None


# -- rollups -----------------------------------------------------------------------------------


def test_recent_buckets_come_at_once_old_ones_when_due() -> None:
    scheduler = RollupScheduler(grace_ms=120_000)
    now = T0 + 10 * MIN + 30_000
    scheduler.mark("d1", "temp", now - 1_000, now)  # current minute
    scheduler.mark("d1", "temp", now - MIN, now)  # previous minute
    scheduler.mark("d1", "temp", T0 + 5 * MIN, now)  # older, due at T0 + 8 min: past
    scheduler.mark("d2", "temp", T0 + 8 * MIN + 5_000, now)  # neither recent nor due yet
    first = scheduler.take(now)
    assert first == [
        ("d1", "temp", T0 + 5 * MIN),
        ("d1", "temp", T0 + 9 * MIN),
        ("d1", "temp", T0 + 10 * MIN),
    ]
    # Nothing new touched: the rest waits for its due time (bucket end + grace).
    assert scheduler.take(now + 5_000) == []
    assert scheduler.take(T0 + 11 * MIN) == [("d2", "temp", T0 + 8 * MIN)]
    assert scheduler.take(T0 + 12 * MIN) == [("d1", "temp", T0 + 9 * MIN)]
    assert scheduler.take(T0 + 13 * MIN) == [("d1", "temp", T0 + 10 * MIN)]
    assert len(scheduler) == 0


def test_marking_readings_and_giving_back_a_failed_pass() -> None:
    scheduler = RollupScheduler(grace_ms=0)
    readings = [
        reading("d1", T0 + 1_000, temp=1.0, running=True),
        reading("d1", T0 + 2_000, temp=2.0, running=True),
    ]
    scheduler.mark_readings(readings, now_ms=T0 + 30 * MIN)
    taken = scheduler.take(T0 + 30 * MIN)
    assert taken == [("d1", "running", T0), ("d1", "temp", T0)]
    scheduler.give_back(taken)
    assert scheduler.take(T0 + 30 * MIN) == taken


def test_marking_a_batch_is_marking_each_metric_of_each_reading() -> None:
    rng = random.Random(3)
    now = T0 + 10 * MIN
    readings = [
        replace_metrics(
            reading(f"d{rng.randrange(4)}", T0 + rng.randrange(12 * MIN), temp=0.0),
            {m: 1.0 for m in rng.sample(["temp", "load", "rpm"], rng.randint(1, 3))},
        )
        for _ in range(500)
    ]
    batch, one_by_one = RollupScheduler(grace_ms=MIN), RollupScheduler(grace_ms=MIN)
    batch.mark_readings(readings, now)
    for r in readings:
        for metric in r.metrics:
            one_by_one.mark(r.device_id, metric, r.ts, now)
    assert len(batch) == len(one_by_one) > 0
    for at in range(now, T0 + 15 * MIN, MIN // 2):
        assert batch.take(at) == one_by_one.take(at)


def replace_metrics(r: NormalisedReading, metrics: dict[str, float]) -> NormalisedReading:
    return r.model_copy(update={"metrics": metrics})


def test_startup_rebuild_covers_every_bucket_that_could_be_pending() -> None:
    grace = 120_000
    since = startup_rebuild_since_ms(T0, grace)
    # The oldest bucket still pending at a crash at T0 ends after T0 - grace.
    oldest_pending_start = T0 - grace - MIN
    assert since <= oldest_pending_start
    assert since == T0 - grace - 6 * MIN


# -- alerts ------------------------------------------------------------------------------------


def reading(
    device_id: str, ts: int, device_type: str = "cnc_spindle", **metrics: float
) -> NormalisedReading:
    return NormalisedReading(
        site="s1",
        device_id=device_id,
        type=device_type,
        ts=ts,
        seq=None,
        metrics=metrics,
        gateway_id="gw1",
        received_ts=ts,
    )


class FakeStore:
    """In-memory `apply_alert`: one open row per (device, gateway, rule)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.rows: dict[int, AlertRow] = {}
        self.applied: list[str] = []
        self.presence: list[tuple[str, str, int]] = []
        self.fail_first = fail_first

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionRefusedError(111, "refused")
        await asyncio.sleep(0)  # let others run, as a real round trip does
        self.applied.append(f"{t.kind}:{t.device_id}:{t.rule}")
        key = (t.device_id, t.gateway_id, t.rule)
        open_row = next(
            (
                r
                for r in self.rows.values()
                if (r.device_id, r.gateway_id, r.rule) == key and r.state == "active"
            ),
            None,
        )
        if t.kind == "raised" and open_row is None:
            row = AlertRow(
                id=len(self.rows) + 1,
                device_id=t.device_id,
                gateway_id=t.gateway_id,
                rule=t.rule,
                severity=t.severity,
                state="active",
                acknowledged=False,
                ack_by=None,
                ack_at=None,
                ack_comment=None,
                metric=t.metric,
                value=t.value,
                message=t.message,
                raised_at=t.ts,
                updated_at=t.ts,
                cleared_at=None,
                cleared_by=None,
                occurrences=1,
            )
        elif open_row is None:
            return None
        elif t.kind == "cleared":
            row = replace(open_row, state="cleared", cleared_at=t.ts, updated_at=t.ts)
        else:
            row = replace(open_row, severity=t.severity, value=t.value, updated_at=t.ts)
        self.rows[row.id] = row
        return row

    async def list_alerts(self, state: str | None = None, limit: int = 100) -> list[AlertRow]:
        return [r for r in self.rows.values() if state is None or r.state == state][:limit]

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        self.presence.append((device_id, state, ts_ms))
        return True


class FakeChannel:
    def __init__(self) -> None:
        self.messages: list[dict[str, object]] = []

    async def publish_alert(self, event_json: str | bytes) -> bool:
        self.messages.append(json.loads(event_json))
        return True


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, dict[str, object]]] = []

    async def send(self, key: bytes | None, value: bytes) -> None:
        self.sent.append((key, json.loads(value)))


def pipeline(
    store: FakeStore | None = None, *, offline_after_s: float = 60.0
) -> tuple[AlertPipeline, FakeStore, FakeChannel, FakeProducer]:
    store = store or FakeStore()
    channel, producer = FakeChannel(), FakeProducer()
    engine = AlertEngine(
        load_rules(),
        device_offline_after_s=offline_after_s,
        gateway_offline_after_s=30,
        buffer_runway_warn_s=3600,
    )
    return (
        AlertPipeline(
            engine,
            store=store,
            channel=channel,
            producer=producer,
            retrier=Retrier(sleep=no_sleep),
        ),
        store,
        channel,
        producer,
    )


async def test_a_transition_is_persisted_then_published_to_kafka_and_redis() -> None:
    alerts, store, channel, producer = pipeline()
    await alerts.observe_readings([reading("cnc-1", T0, spindle_temp_c=95.0)])
    assert store.applied == ["raised:cnc-1:cnc_spindle.spindle_temp_c.threshold"]
    ((key, event),) = producer.sent
    assert key == b"cnc-1"
    assert event["v"] == 1
    assert event["event"] == "raised"
    assert event["state"] == "active"
    assert event["value"] == 95.0
    assert channel.messages == [event]


async def test_nothing_is_published_when_the_store_has_no_such_alert() -> None:
    alerts, store, channel, producer = pipeline()
    await alerts.feed(lambda engine: [_cleared("cnc-9")])  # nothing open in the store
    assert store.applied == ["cleared:cnc-9:device_offline"]
    assert producer.sent == []
    assert channel.messages == []


def _cleared(device_id: str) -> AlertTransition:
    return AlertTransition(
        kind="cleared",
        device_id=device_id,
        gateway_id="gw1",
        rule="device_offline",
        severity="critical",
        metric=None,
        value=None,
        message="back",
        ts=T0,
    )


async def test_silence_and_return_set_the_devices_presence() -> None:
    alerts, store, _, _ = pipeline(offline_after_s=5)
    await alerts.observe_readings([reading("cnc-1", T0, spindle_temp_c=40.0)])
    assert store.presence == []  # data alone says nothing new
    await alerts.tick(T0 + 6_000)
    assert store.presence == [("cnc-1", "offline", T0 + 6_000)]
    await alerts.feed(lambda engine: [_cleared("cnc-1")])
    assert store.presence[-1] == ("cnc-1", "online", T0)
    threshold = replace(_cleared("cnc-1"), rule="cnc_spindle.spindle_temp_c.threshold")
    await alerts.feed(lambda engine: [threshold])
    assert len(store.presence) == 2  # other rules leave presence alone


async def test_transient_store_errors_are_retried_and_counted() -> None:
    alerts, _, _, producer = pipeline(FakeStore(fail_first=2))
    await alerts.observe_readings([reading("cnc-1", T0, spindle_temp_c=95.0)])
    assert alerts.counters.db_retries_total == 2
    assert len(producer.sent) == 1


async def test_inputs_from_several_agents_keep_each_alert_in_order() -> None:
    alerts, store, _, producer = pipeline(offline_after_s=1)
    await alerts.observe_readings([reading("cnc-1", T0, spindle_temp_c=50.0)])
    # The tick raises device_offline while a reading (arriving concurrently) clears it: the
    # clearing must not overtake the raise in the store.
    await asyncio.gather(
        alerts.tick(T0 + 5_000),
        alerts.observe_readings([reading("cnc-1", T0 + 6_000, spindle_temp_c=50.0)]),
    )
    assert store.applied == ["raised:cnc-1:device_offline", "cleared:cnc-1:device_offline"]
    assert [e["event"] for _, e in producer.sent] == ["raised", "cleared"]
    assert all(row.state == "cleared" for row in store.rows.values())


async def test_restore_adopts_open_alerts_so_none_is_raised_twice() -> None:
    alerts, store, _, _ = pipeline()
    await alerts.observe_readings([reading("cnc-1", T0, spindle_temp_c=95.0)])
    # A restarted worker: a fresh engine over the same store.
    restarted, _, _, producer2 = pipeline(store)
    assert await restarted.restore(T0 + 1_000) == 1
    await restarted.observe_readings([reading("cnc-1", T0 + 2_000, spindle_temp_c=96.0)])
    assert producer2.sent == []
    await restarted.observe_readings(
        [reading("cnc-1", T0 + 3_000 + i * 20_000, spindle_temp_c=50.0) for i in range(3)]
    )
    assert [e["event"] for _, e in producer2.sent] == ["cleared"]


def test_alert_event_and_key() -> None:
    row = AlertRow(
        id=7,
        device_id=None,
        gateway_id="gw1",
        rule="gateway_offline",
        severity="critical",
        state="active",
        acknowledged=False,
        ack_by=None,
        ack_at=None,
        ack_comment=None,
        metric=None,
        value=None,
        message="m",
        raised_at=T0,
        updated_at=T0,
        cleared_at=None,
        cleared_by=None,
        occurrences=1,
    )
    assert event_key(row) == b"gw1"
    assert open_alerts([row, replace(row, id=8, state="cleared")]) == [
        OpenAlert(None, "gw1", "gateway_offline", "critical")
    ]
    event = alert_event("raised", row)
    assert event == {"v": 1, "event": "raised", **row.to_json()}


# -- status and heartbeats ---------------------------------------------------------------------


class FakeStateDb:
    def __init__(self) -> None:
        self.states: dict[str, tuple[str, int]] = {}

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        old = self.states.get(device_id)
        if old is not None and old[1] > ts_ms:
            return False
        self.states[device_id] = (state, ts_ms)
        return old is None or old[0] != state


class FakeLive:
    def __init__(self) -> None:
        self.device_states: list[tuple[str, str]] = []
        self.gateways: dict[str, str] = {}

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        self.device_states.append((device_id, state))
        return True

    async def set_gateway_state(self, health: GatewayHealth) -> bool:
        self.gateways[health.gateway_id] = encode_gateway_health(health)
        return True


class FakeDlq:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    async def send(self, value: bytes, *, error: str) -> None:
        self.sent.append((value, error))


def status(device_id: str, state: str, ts: int) -> bytes:
    return encode(
        DeviceStatus(site="s1", device_id=device_id, state=state, ts=ts, gateway_id="gw1")  # type: ignore[arg-type]
    )


async def test_statuses_go_to_the_database_redis_on_change_and_the_engine() -> None:
    alerts, _, _, producer = pipeline()
    db, live, dlq, counters = FakeStateDb(), FakeLive(), FakeDlq(), StatusCounters()
    batches = [
        [status("cnc-1", "online", T0), b"{broken"],
        # Within a batch only the newest per device counts: offline at T0 + 2.
        [status("cnc-1", "online", T0 + 1), status("cnc-1", "offline", T0 + 2)],
        [status("cnc-1", "online", T0 - 5)],  # stale: neither Redis nor the engine move
    ]
    for batch in batches:
        await handle_statuses(
            batch,
            db=db,
            live=live,
            alerts=alerts,
            dlq=dlq,
            counters=counters,
            retrier=Retrier(sleep=no_sleep),
        )
    assert db.states["cnc-1"] == ("offline", T0 + 2)
    assert live.device_states == [("cnc-1", "online"), ("cnc-1", "offline")]
    assert [(e["event"], e["rule"]) for _, e in producer.sent] == [("raised", "device_offline")]
    assert [error.split(":")[0] for _, error in dlq.sent] == ["invalid_json"]
    assert counters.statuses_total == 4
    assert counters.state_changes_total == 2
    assert counters.dead_lettered_total == 1


def test_a_batch_keeps_the_newest_status_of_each_device_in_batch_order() -> None:
    def s(device_id: str, state: str, ts: int) -> DeviceStatus:
        return DeviceStatus(site="s1", device_id=device_id, state=state, ts=ts, gateway_id="g")  # type: ignore[arg-type]

    batch = [s("a", "online", 5), s("b", "offline", 1), s("a", "offline", 3), s("b", "online", 1)]
    assert newest_per_device(batch) == [s("a", "online", 5), s("b", "online", 1)]


edge_metrics = make_edge_metrics


def test_gateway_state_is_the_record_plus_the_hub_receive_time() -> None:
    m = edge_metrics("gw1", T0)
    assert json.loads(encode_gateway_health(GatewayHealth.received(m, T0 + 5))) == {
        **json.loads(m.model_dump_json()),
        "received_ts": T0 + 5,
    }


async def test_heartbeats_update_redis_and_end_a_gateway_outage() -> None:
    alerts, _, _, producer = pipeline()
    live, dlq, counters = FakeLive(), FakeDlq(), StatusCounters()
    clock = [T0]

    async def beat(*records: bytes) -> None:
        await handle_edge_metrics(
            list(records),
            live=live,
            alerts=alerts,
            dlq=dlq,
            counters=counters,
            now_ms=lambda: clock[0],
            retrier=Retrier(sleep=no_sleep),
        )

    await beat(encode(edge_metrics("gw1", T0)), b"[]")
    assert json.loads(live.gateways["gw1"])["received_ts"] == T0
    assert len(dlq.sent) == 1
    await alerts.tick(T0 + 31_000)
    # A gateway clock far ahead does not count: the hub's receive time caps it.
    clock[0] = T0 + 40_000
    await beat(encode(edge_metrics("gw1", T0 + 3_600_000)))
    assert [(e["event"], e["rule"]) for _, e in producer.sent] == [
        ("raised", "gateway_offline"),
        ("cleared", "gateway_offline"),
    ]
    assert counters.heartbeats_total == 2


async def test_a_low_buffer_runway_raises_a_gateway_warning_until_it_recovers() -> None:
    alerts, store, _, producer = pipeline()

    async def beat(ts: int, runway_s: float | None) -> None:
        metrics = edge_metrics("gw1", ts).model_copy(update={"buffer_runway_s": runway_s})
        await handle_edge_metrics(
            [encode(metrics)],
            live=FakeLive(),
            alerts=alerts,
            dlq=FakeDlq(),
            counters=StatusCounters(),
            now_ms=lambda: ts,
            retrier=Retrier(sleep=no_sleep),
        )

    await beat(T0, None)
    await beat(T0 + 10_000, 1800.0)
    await beat(T0 + 20_000, 1700.0)
    await beat(T0 + 30_000, None)
    # Keyed on the gateway: no device, the gateway id as the Kafka key.
    assert store.applied == [
        "raised:None:gateway_buffer_runway",
        "cleared:None:gateway_buffer_runway",
    ]
    assert [(key, e["event"], e["gateway_id"], e["severity"]) for key, e in producer.sent] == [
        (b"gw1", "raised", "gw1", "warning"),
        (b"gw1", "cleared", "gw1", "warning"),
    ]


# -- maintenance -------------------------------------------------------------------------------


class FakeSchemaDb:
    def __init__(self, errors: Sequence[BaseException] = ()) -> None:
        self.errors = list(errors)
        self.calls: list[str] = []

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    async def migrate(self) -> list[str]:
        self.calls.append("migrate")
        self._maybe_fail()
        return ["0001_init"]

    async def ensure_partitions(
        self, now_ms: int, ahead_days: int, behind_days: int = 1
    ) -> list[str]:
        self.calls.append(f"ensure:{ahead_days}")
        self._maybe_fail()
        return ["readings_p20251128"]

    async def drop_expired_partitions(self, now_ms: int, retention_days: int) -> list[str]:
        self.calls.append(f"drop:{retention_days}")
        self._maybe_fail()
        return []


async def test_startup_waits_out_a_database_outage() -> None:
    db = FakeSchemaDb([ConnectionRefusedError(111, "refused")])
    await prepare_schema(db, now_ms=T0, ahead_days=3, retrier=Retrier(sleep=no_sleep))
    assert db.calls == ["migrate", "migrate", "ensure:3"]


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (asyncpg.LockNotAvailableError("lock timeout"), logging.WARNING),
        (ConnectionResetError(104, "reset"), logging.WARNING),
        (asyncpg.InsufficientPrivilegeError("denied"), logging.ERROR),
    ],
)
async def test_hourly_maintenance_failures_are_logged_not_raised(
    error: BaseException, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    db = FakeSchemaDb([error])
    with caplog.at_level(logging.INFO, logger="hub.agents.maintenance"):
        assert not await maintain_partitions(db, now_ms=T0, ahead_days=3, retention_days=30)
    (record,) = [r for r in caplog.records if r.getMessage() == "partition_maintenance_failed"]
    assert record.levelno == level
    # The next pass tries again and succeeds.
    assert await maintain_partitions(db, now_ms=T0, ahead_days=3, retention_days=30)
    assert db.calls[-2:] == ["ensure:3", "drop:30"]


async def test_hourly_maintenance_lets_a_bug_through() -> None:
    db = FakeSchemaDb([TypeError("bug")])
    with pytest.raises(TypeError):
        await maintain_partitions(db, now_ms=T0, ahead_days=3, retention_days=30)


# -- ingest's hook -----------------------------------------------------------------------------


class FakeWriter:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> object:
        self.log.append(f"db:{len(readings)}")
        return None


class FakeReadingsLive:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool:
        self.log.append("redis")
        return True

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool:
        return True


async def test_after_commit_sees_the_batch_once_it_is_written() -> None:
    log: list[str] = []

    async def after_commit(readings: Iterable[NormalisedReading]) -> None:
        log.append(f"after:{len(list(readings))}")

    for batch in ([encode(reading("d1", T0, temp=1.0))], [b"junk"]):
        await ingest_batch(
            batch,
            db=FakeWriter(log),
            live=FakeReadingsLive(log),
            dlq_producer=FakeDlq(),
            counters=IngestCounters(),
            after_commit=after_commit,
            retrier=Retrier(sleep=no_sleep),
        )
    assert log == ["db:1", "redis", "after:1"]  # nothing after a batch without readings
