"""One-minute rollups against a real PostgreSQL: equal to the same aggregates computed ad hoc
from `readings`, whatever order the readings arrived in."""

from __future__ import annotations

import random

import asyncpg
import pytest

from hub.storage.partitions import datetime_to_ms
from hub.storage.postgres import Database
from protocol import NormalisedReading

pytestmark = pytest.mark.integration

MIDNIGHT = 1_764_374_400_000  # 2025-11-29T00:00:00Z: the readings straddle two day partitions
START = MIDNIGHT - 3 * 60_000 + 17_000  # 23:57:17, mid-minute
MINUTES = 6

# Independent of the code under test: buckets by epoch arithmetic, "last" by DISTINCT ON.
AD_HOC = """
WITH b AS (
    SELECT device_id, metric, ts, value,
           to_timestamp(floor(extract(epoch FROM ts) / 60) * 60) AS bucket
    FROM readings
), agg AS (
    SELECT device_id, metric, bucket, count(*) AS count, min(value) AS min, max(value) AS max,
           avg(value) AS avg, max(ts) AS last_ts
    FROM b GROUP BY 1, 2, 3
), last AS (
    SELECT DISTINCT ON (device_id, metric, bucket) device_id, metric, bucket, value AS last
    FROM b ORDER BY device_id, metric, bucket, ts DESC
)
SELECT * FROM agg JOIN last USING (device_id, metric, bucket)
"""

Rollups = dict[tuple[str, str, int], tuple[int, float, float, float, float, int]]


def to_rollups(rows: list[asyncpg.Record]) -> Rollups:
    return {
        (r["device_id"], r["metric"], datetime_to_ms(r["bucket"])): (
            r["count"],
            r["min"],
            r["max"],
            r["avg"],
            r["last"],
            datetime_to_ms(r["last_ts"]),
        )
        for r in rows
    }


async def expected(pg: asyncpg.Connection) -> Rollups:
    return to_rollups(await pg.fetch(AD_HOC))


async def stored(pg: asyncpg.Connection) -> Rollups:
    return to_rollups(await pg.fetch("SELECT * FROM readings_1m"))


def assert_same(actual: Rollups, wanted: Rollups) -> None:
    assert actual.keys() == wanted.keys()
    for key, (count, low, high, avg, last, last_ts) in wanted.items():
        got = actual[key]
        assert (got[0], got[1], got[2], got[4], got[5]) == (count, low, high, last, last_ts)
        # avg is a float sum: the order of summation may change its last bits.
        assert got[3] == pytest.approx(avg, rel=1e-12)


def random_readings(seed: int) -> list[NormalisedReading]:
    rng = random.Random(seed)
    out = []
    for device in ("roll-1", "roll-2"):
        ts = START
        while ts < START + MINUTES * 60_000:
            metrics: dict[str, float | bool] = {"temp_c": round(rng.uniform(-20, 120), 3)}
            if rng.random() < 0.7:
                metrics["running"] = rng.random() < 0.5
            out.append(
                NormalisedReading(
                    site="site-1",
                    device_id=device,
                    type=None,
                    ts=ts,
                    seq=None,
                    metrics=metrics,
                    gateway_id="gw-1",
                    received_ts=ts,
                )
            )
            ts += rng.randint(1, 9_000)
    rng.shuffle(out)  # arrival order is not ts order
    return out


async def write_in_batches(database: Database, readings: list[NormalisedReading]) -> None:
    for i in range(0, len(readings), 37):
        await database.write_readings(readings[i : i + 37])


async def test_recompute_equals_ad_hoc_aggregates(
    database: Database, pg: asyncpg.Connection
) -> None:
    readings = random_readings(seed=1)
    await write_in_batches(database, readings)
    # Buckets named by the ts of any reading in them, many times over.
    buckets = [(r.device_id, m, r.ts) for r in readings for m in r.metrics]
    wanted = await expected(pg)
    assert await database.recompute_rollups(buckets) == len(wanted)
    assert_same(await stored(pg), wanted)
    assert await database.recompute_rollups(buckets) == 0  # nothing changed, nothing written

    # A late reading changes its bucket only.
    late_ts = START + 60_000 + 123
    late = readings[0].model_copy(update={"device_id": "roll-1", "ts": late_ts})
    late = late.model_copy(update={"metrics": {"temp_c": 1000.0}})
    assert (await database.write_readings([late])).inserted == 1
    assert await database.recompute_rollups([("roll-1", "temp_c", late_ts)]) == 1
    assert_same(await stored(pg), await expected(pg))


async def test_rebuild_equals_ad_hoc_aggregates(database: Database, pg: asyncpg.Connection) -> None:
    await write_in_batches(database, random_readings(seed=2))
    wanted = await expected(pg)
    assert await database.rebuild_rollups(START - 3_600_000) == len(wanted)
    assert_same(await stored(pg), wanted)
    assert await database.rebuild_rollups(START, START + MINUTES * 60_000) == 0


async def test_rebuild_of_a_range_widens_to_whole_minutes_and_stays_inside(
    database: Database, pg: asyncpg.Connection
) -> None:
    await write_in_batches(database, random_readings(seed=3))
    wanted = await expected(pg)
    # 23:59:30 to 00:00:10: the buckets 23:59 and 00:00, each from all of its readings.
    await database.rebuild_rollups(MIDNIGHT - 30_000, MIDNIGHT + 10_000)
    inside = {k: v for k, v in wanted.items() if k[2] in (MIDNIGHT - 60_000, MIDNIGHT)}
    assert len(inside) == 8  # two minutes, two devices, two metrics
    assert_same(await stored(pg), inside)


async def test_rollups_of_nothing(database: Database) -> None:
    assert await database.recompute_rollups([]) == 0
    assert await database.recompute_rollups([("nobody", "temp_c", START)]) == 0
    assert await database.rebuild_rollups(START) == 0  # no partitions at all
