"""Poison records against the real `iot-hub worker`, Kafka, PostgreSQL and Redis: every case the
review reproduced, each with good records around it. The worker must stay up and ready, write
every good reading, and put each poison record on `iot.hub.dlq` with its reason."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from hypothesis import Phase, given, settings
from redis.asyncio import Redis

from hub.settings import HUB_DLQ_TOPIC
from hub.storage.postgres import Database
from protocol import encode, topics
from tests.support.fuzz import kafka_readings
from tests.support.hub import (
    HubWorkerProcess,
    committed_past,
    end_offsets,
    position_group_at_end,
    produce,
    read_range,
)
from tests.support.kafka import KafkaTail, ensure_topics
from tests.support.process import free_port
from tests.support.readings import make_reading
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

MIN = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def worker(
    tmp_path: Path, kafka: str, redis_url: str, redis: Redis, fresh_database: str
) -> AsyncIterator[HubWorkerProcess]:
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    process = HubWorkerProcess(tmp_path, kafka, redis_url, database_url=fresh_database)
    await position_group_at_end(kafka, process.group)
    process.env["HUB_WORKER_WEB_PORT"] = str(free_port())
    yield process
    process.cleanup()


async def ready(worker: HubWorkerProcess) -> bool:
    url = f"http://127.0.0.1:{worker.env['HUB_WORKER_WEB_PORT']}/readyz"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def start(worker: HubWorkerProcess) -> None:
    worker.start()
    await async_wait_until(lambda: ready(worker), 90, f"worker ready (log {worker.log_path})")


def reading(
    device_id: str, ts: int, device_type: str = "conveyor", **metrics: float
) -> dict[str, Any]:
    """A valid reading as a dict, for a test to break one field of."""
    built = make_reading(
        device_id,
        ts,
        dict(metrics or {"belt_speed_m_s": 1.5}),
        type=device_type,
        gateway_id="gw-poison",
    )
    body: dict[str, Any] = json.loads(encode(built))
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


async def count_rows(pg: asyncpg.Connection, devices: list[str]) -> int:
    value: int = await pg.fetchval(
        "SELECT count(*) FROM readings WHERE device_id = ANY($1)", devices
    )
    return value


async def test_poison_readings_and_statuses_are_dead_lettered_and_the_worker_stays_up(
    worker: HubWorkerProcess, kafka: str, fresh_database: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    t0 = now_ms() - 5 * MIN
    good = [f"conv-{tag}-{n}" for n in range(4)]
    spindle = f"cnc-{tag}"
    # Each of these broke or could break the worker before; keyed like the edge keys them.
    poison: dict[str, bytes] = {
        # the reported case: -1e308 then 1e308 in one minute; avg() overflowed
        "low": raw(reading(spindle, t0, "cnc_spindle") | {"metrics": {"spindle_temp_c": -1e308}}),
        "high": raw(
            reading(spindle, t0 + 1, "cnc_spindle") | {"metrics": {"spindle_temp_c": 1e308}}
        ),
        "markup_metric": raw(reading(spindle, t0) | {"metrics": {'a" onclick="x': 1.0}}),
        "nul_gateway": raw(reading(spindle, t0) | {"gateway_id": "gw\u0000x"}),
        "control_type": raw(reading(spindle, t0) | {"type": "cnc\u0007"}),
        "year_10000": raw(reading(spindle, t0) | {"ts": 253_402_387_139_000}),
        "far_future": raw(reading(spindle, t0) | {"ts": now_ms() + 2 * 24 * 3_600_000}),
        "huge_seq": raw(reading(spindle, t0) | {"seq": 2**70}),
        "long_site": raw(reading(spindle, t0) | {"site": "s" * 10_000}),
        "not_utf8": b"\x00\xff{",
        "not_json": b'{"v": 1, "site": ' + tag.encode(),
    }
    reasons = {
        "low": "value_out_of_range",
        "high": "value_out_of_range",
        "markup_metric": "bad_metric_name",
        "nul_gateway": "wrong_shape",
        "control_type": "wrong_shape",
        "year_10000": "ts_out_of_range",
        "far_future": "ts_out_of_range",
        "huge_seq": "wrong_shape",
        "long_site": "wrong_shape",
        "not_utf8": "invalid_utf8",
        "not_json": "invalid_json",
    }
    records: list[tuple[bytes | None, bytes]] = []
    for i in range(10):
        records += [(d.encode(), raw(reading(d, t0 + i * 1000))) for d in good]
        if i == 5:
            records += [(spindle.encode(), value) for value in poison.values()]
    # A rate-of-change rule over the largest values allowed: a huge rate, never an infinity.
    records += [
        (spindle.encode(), raw(reading(spindle, t0 + 10_000, "cnc_spindle", spindle_temp_c=-1e15))),
        (spindle.encode(), raw(reading(spindle, t0 + 16_000, "cnc_spindle", spindle_temp_c=1e15))),
    ]
    pg = await asyncpg.connect(fresh_database)
    try:
        await start(worker)
        async with KafkaTail(kafka, [HUB_DLQ_TOPIC]) as dlq:
            await produce(kafka, records)
            letters = await dlq.collect_until(
                lambda rs: sum(1 for r in rs if r.value in poison.values()) >= len(poison),
                90,
                f"{len(poison)} dead letters (log {worker.log_path})",
            )
        await async_wait_until(
            lambda: _equals(count_rows(pg, [*good, spindle]), 40 + 2), 60, "good rows written"
        )
        errors = {r.value: dict(r.headers)["error"].decode() for r in letters}
        for name, value in poison.items():
            assert errors[value].split(":", 1)[0] == reasons[name], (name, errors[value])
        stored = await pg.fetch(
            "SELECT value FROM readings WHERE device_id = $1 ORDER BY ts", spindle
        )
        assert [r["value"] for r in stored] == [-1e15, 1e15]

        async def rate_alert() -> str | None:
            message: str | None = await pg.fetchval(
                "SELECT message FROM alerts WHERE device_id = $1 AND rule = $2",
                spindle,
                "cnc_spindle.spindle_temp_c.rate",
            )
            return message

        # Alerts follow the commit of their readings: wait for it rather than race it.
        await async_wait_until(lambda: _is_set(rate_alert()), 30, "the rate alert")
        assert "rising 3.33333e+14/s" in str(await rate_alert())
        assert worker.running()
        assert await ready(worker)
        assert worker.count("ingest_failed") == 0
        assert [e for e in worker.errors() if "level=critical" in e] == []
    finally:
        await pg.close()


async def test_fuzzed_records_leave_the_worker_up_and_lose_nothing(
    worker: HubWorkerProcess, kafka: str, fresh_database: str
) -> None:
    """Hypothesis-made hostile `iot.telemetry` values among good ones, through the real worker:
    it stays up and ready, and every record ends either in `readings` or on the dead-letter
    topic, byte for byte."""
    tag = uuid.uuid4().hex[:6]
    t0 = now_ms() - 5 * MIN
    fuzzed: list[bytes] = []

    @settings(max_examples=150, deadline=None, database=None, phases=[Phase.generate])
    @given(kafka_readings(f"fz-{tag}", t0))
    def collect(raw: bytes) -> None:
        fuzzed.append(raw)

    collect()
    good = [f"conv-{tag}-{n}" for n in range(3)]
    records: list[tuple[bytes | None, bytes]] = []
    for i, value in enumerate(dict.fromkeys(fuzzed)):  # each distinct value once
        records.append((None, value))
        records.append((good[i % 3].encode(), raw(reading(good[i % 3], t0 + i))))
    fuzz_values = {value for key, value in records if key is None}
    good_rows = len(records) - len(fuzz_values)
    dlq_start = await end_offsets(kafka, HUB_DLQ_TOPIC)
    pg = await asyncpg.connect(fresh_database)
    try:
        await start(worker)
        spans = await produce(kafka, records)
        ends = {tp: last + 1 for tp, (_, last) in spans.items()}
        await async_wait_until(
            lambda: committed_past(kafka, worker.group, ends),
            120,
            f"all consumed ({worker.log_path})",
        )
        dead = {
            r.value
            for r in await read_range(kafka, dlq_start, await end_offsets(kafka, HUB_DLQ_TOPIC))
        }
        assert await count_rows(pg, good) == good_rows
        stored = 0
        for value in fuzz_values - dead:
            body = json.loads(value)  # not dead-lettered: it was a reading, so it is stored
            found = await pg.fetchval(
                "SELECT count(*) FROM readings WHERE device_id = $1 "
                "AND ts = to_timestamp($2 / 1000.0) AND metric = ANY($3)",
                body["device_id"],
                body["ts"],
                list(body["metrics"]),
            )
            assert found == len(body["metrics"]), value
            stored += 1
        assert 0 < stored < len(fuzz_values)  # the fuzz reached both outcomes
        assert worker.running()
        assert await ready(worker)
        assert [e for e in worker.errors() if "level=critical" in e] == []
    finally:
        await pg.close()


async def test_a_far_future_status_is_refused_and_cannot_freeze_the_state(
    worker: HubWorkerProcess, kafka: str, fresh_database: str
) -> None:
    device = f"press-{uuid.uuid4().hex[:6]}"

    def status(state: str, ts: int) -> tuple[bytes, bytes]:
        body = {"v": 1, "site": "s1", "device_id": device, "state": state, "ts": ts}
        return device.encode(), raw({**body, "gateway_id": "gw-1"})

    future = status("offline", now_ms() + 24 * 3_600_000)
    # What "9999-12-31T23:59:59-23:59" converts to: past year 9999 in UTC.
    year_10000 = (device.encode(), raw({**json.loads(future[1]), "ts": 253_402_387_139_000}))
    refused = {future[1], year_10000[1]}
    pg = await asyncpg.connect(fresh_database)
    try:
        await start(worker)
        async with KafkaTail(kafka, [HUB_DLQ_TOPIC]) as dlq:
            await produce(kafka, [future, year_10000], topic=topics.DEVICE_STATUS)
            letters = await dlq.collect_until(
                lambda rs: sum(1 for r in rs if r.value in refused) == 2, 60, "2 dead letters"
            )
        errors = [dict(r.headers)["error"] for r in letters if r.value in refused]
        assert all(error.startswith(b"ts_out_of_range: ") for error in errors), errors

        async def state() -> str | None:
            value: str | None = await pg.fetchval(
                "SELECT state FROM devices WHERE device_id = $1", device
            )
            return value

        now = now_ms()
        await produce(kafka, [status("online", now)], topic=topics.DEVICE_STATUS)
        await async_wait_until(lambda: _equals(state(), "online"), 60, "online applied")
        await produce(kafka, [status("offline", now + 1000)], topic=topics.DEVICE_STATUS)
        await async_wait_until(lambda: _equals(state(), "offline"), 60, "offline applied")
        assert worker.running()
        assert await ready(worker)
    finally:
        await pg.close()


async def test_a_rollup_minute_that_cannot_be_computed_is_skipped_at_start_and_later(
    worker: HubWorkerProcess, kafka: str, fresh_database: str
) -> None:
    """Rows written before the hub bounded values: avg() over them overflows double precision.
    Neither the start-up rebuild nor the rollup timer may stop the worker on that minute."""
    tag = uuid.uuid4().hex[:6]
    bad, fine = f"cnc-{tag}", f"conv-{tag}"
    minute = (now_ms() // MIN - 1) * MIN
    db = await Database.connect(fresh_database)
    try:
        await db.ensure_partitions(minute, ahead_days=1)
    finally:
        await db.close()
    pg = await asyncpg.connect(fresh_database)
    try:
        await pg.executemany(
            "INSERT INTO readings (device_id, metric, ts, value) "
            "VALUES ($1, 'spindle_temp_c', to_timestamp($2 / 1000.0), $3)",
            [(bad, minute + 1000, 1.7e308), (bad, minute + 2000, 1.7e308)],
        )
        worker.env["HUB_ROLLUP_GRACE_S"] = "0"
        await start(worker)
        assert worker.count("rollup_skipped") >= 1
        # New readings in the same minute: the recompute of `bad` fails, `fine`'s does not.
        await produce(
            kafka,
            [
                (
                    bad.encode(),
                    raw(reading(bad, minute + 3000, "cnc_spindle", spindle_temp_c=60.0)),
                ),
                (fine.encode(), raw(reading(fine, minute + 3000))),
            ],
        )

        async def fine_rolled_up() -> bool:
            count = await pg.fetchval("SELECT count(*) FROM readings_1m WHERE device_id = $1", fine)
            return bool(count) and worker.count("rollup_skipped") >= 1

        await async_wait_until(fine_rolled_up, 60, f"rollups computed (log {worker.log_path})")
        assert worker.running()
        assert await ready(worker)
        assert await pg.fetchval("SELECT count(*) FROM readings_1m WHERE device_id = $1", bad) == 0
    finally:
        await pg.close()


async def test_a_row_the_database_refuses_is_dead_lettered_alone(
    worker: HubWorkerProcess, kafka: str, fresh_database: str
) -> None:
    """A refusal no validation foresaw (here a CHECK constraint an operator added): the batch
    is bisected, only the refused reading goes to the dead-letter topic."""
    tag = uuid.uuid4().hex[:6]
    devices = [f"conv-{tag}-{n}" for n in range(5)]
    pg = await asyncpg.connect(fresh_database)
    try:
        await pg.execute("ALTER TABLE readings ADD CONSTRAINT sane_speed CHECK (value < 1e9)")
        t0 = now_ms() - MIN
        refused = raw(reading(devices[2], t0 + 7000, belt_speed_m_s=5e9))
        records = [(d.encode(), raw(reading(d, t0 + i * 1000))) for i in range(10) for d in devices]
        records.insert(27, (devices[2].encode(), refused))
        await start(worker)
        async with KafkaTail(kafka, [HUB_DLQ_TOPIC]) as dlq:
            await produce(kafka, records)
            (letter,) = [
                r
                for r in await dlq.collect_until(
                    lambda rs: any(r.value == refused for r in rs), 60, "the refused reading"
                )
                if r.value == refused
            ]
        assert dict(letter.headers)["error"].startswith(b"unprocessable: CheckViolationError")
        await async_wait_until(lambda: _equals(count_rows(pg, devices), 50), 60, "50 rows")
        assert worker.running()
        assert await ready(worker)
        assert worker.count("reading_unprocessable") == 1
    finally:
        await pg.close()


async def _is_set(value: Awaitable[object]) -> bool:
    return await value is not None


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_state_frozen_by_an_old_far_future_status_thaws(
    database: Database, pg: asyncpg.Connection
) -> None:
    """A database written before the hub bounded timestamps may hold a state from year 9999;
    the next status (or presence the hub observes) applies all the same."""
    now = now_ms()
    assert await database.set_device_state("press-1", "s1", "gw-1", "online", now)
    await pg.execute(
        "UPDATE devices SET state_ts = '9999-12-31T00:00:00Z' WHERE device_id = 'press-1'"
    )
    assert await database.set_device_state("press-1", "s1", "gw-1", "offline", now + 1000)
    assert await database.mark_presence("press-1", "online", now + 2000)
    # An ordinary newer state still wins over an older status, as before.
    assert not await database.set_device_state("press-1", "s1", "gw-1", "offline", now + 1500)
    assert await pg.fetchval("SELECT state FROM devices WHERE device_id = 'press-1'") == "online"
