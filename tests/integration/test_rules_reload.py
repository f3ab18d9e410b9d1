"""Rules edited while a real worker runs (`iot-hub worker` on Kafka, PostgreSQL and Redis): a new
version in `rule_versions` reaches the running worker, and the next reading is judged by it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.rules.edits import RuleChange, apply_changes, build_rules, empty_document, load_seed
from hub.storage.rule_versions import PostgresRuleVersions
from tests.integration.test_hub_agents import (
    SPINDLE_TEMP_RULE,
    alert_rows,
    now_ms,
    reading,
    send_readings,
    worker_ready,
)
from tests.support.hub import HubWorkerProcess
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

KEY = "spindle_temp_c.threshold"  # warn_high 75 in the defaults


@pytest.fixture
async def pool(blank_database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(blank_database, min_size=1, max_size=2)
    yield p
    await p.close()


async def reloaded(worker: HubWorkerProcess, version: int) -> None:
    async def seen() -> bool:
        assert worker.running(), worker.log()
        return any(
            "event=rules_reloaded" in line and f" version={version} " in line
            for line in worker.log().splitlines()
        )

    await async_wait_until(seen, 30, f"worker reloads version {version} ({worker.log_path})")


async def test_an_edit_reaches_the_running_worker_and_changes_what_a_reading_raises(
    worker: HubWorkerProcess, pool: asyncpg.Pool, kafka: str
) -> None:
    device = f"cnc-reload-{uuid.uuid4().hex[:6]}"
    worker.start(HUB_RULES_POLL_S="0.5")
    await worker_ready(worker)
    conn = await pool.acquire()
    try:
        await send_readings(
            kafka,
            [reading(device, now_ms(), "cnc_spindle", spindle_temp_c=70.0)],
        )
        await async_wait_until(
            lambda: device_seen(conn, device), 30, f"the worker ingests {device}"
        )
        assert await alert_rows(conn, device) == []  # 70 is below warn_high 75

        versions = PostgresRuleVersions(pool)
        lowered = apply_changes(
            empty_document(), [RuleChange(KEY, {"warn_high": 65}, "cnc_spindle")]
        )
        build_rules(load_seed(), lowered)  # what the web process checks before storing
        await versions.append(lowered, author="test", base=0, comment="lower it")
        await reloaded(worker, 1)

        await send_readings(
            kafka,
            [reading(device, now_ms(), "cnc_spindle", spindle_temp_c=70.0)],
        )

        async def raised() -> bool:
            rows = await alert_rows(conn, device)
            return [(r["rule"], r["severity"], r["state"]) for r in rows] == [
                (SPINDLE_TEMP_RULE, "warning", "active")
            ]

        await async_wait_until(raised, 30, "the same reading raises a warning under version 1")

        # Switching the rule off clears its open alert at once, without a reading.
        disabled = apply_changes(lowered, [RuleChange(KEY, {"enabled": False}, "cnc_spindle")])
        await versions.append(disabled, author="test", base=1)
        await reloaded(worker, 2)

        async def cleared() -> bool:
            rows = await alert_rows(conn, device)
            return [r["state"] for r in rows] == ["cleared"]

        await async_wait_until(cleared, 30, "the disabled rule's alert clears")
        assert worker.errors() == []
    finally:
        await pool.release(conn)


async def device_seen(conn: asyncpg.Connection, device_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM devices WHERE device_id = $1", device_id)
    return found is not None
