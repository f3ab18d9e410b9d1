"""A rule edited in the browser changes what a following reading raises: headless Chromium on
`iot-hub web` edits a threshold on /rules, a real `iot-hub worker` (Kafka, PostgreSQL, Redis)
picks the new version up without a restart, and a reading it ignored before now raises an
alert. Also the rules page's screenshot for the docs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from hub.settings import HUB_DLQ_TOPIC
from protocol import topics
from tests.integration.test_hub_agents import now_ms, reading, send_readings
from tests.support.feed import PASSWORD, HubFeed
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.kafka import ensure_topics
from tests.support.waiting import async_wait_until
from tests.web.browser import WINDOW, Page
from tests.web.test_screenshots import SHOTS, png_size

pytestmark = pytest.mark.integration

RULE = "cnc_spindle.spindle_temp_c.threshold"  # warn_high 75 in the defaults
SLUG = "spindle_temp_c-threshold"


def retype(field: WebElement, text: str) -> None:
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(text)


@pytest.fixture
async def db(web_database_url: str, feed: HubFeed) -> AsyncIterator[asyncpg.Connection]:
    """The web tests' database, with no rule versions (`feed` emptied the rest)."""
    conn = await asyncpg.connect(web_database_url)
    await conn.execute("TRUNCATE rule_versions")
    yield conn
    await conn.close()


@pytest.fixture
async def worker(
    tmp_path: Path, kafka: str, web_redis_url: str, web_database_url: str, db: asyncpg.Connection
) -> AsyncIterator[HubWorkerProcess]:
    await ensure_topics(kafka, [*topics.KAFKA_TOPICS, HUB_DLQ_TOPIC])
    process = HubWorkerProcess(tmp_path, kafka, web_redis_url, database_url=web_database_url)
    await position_group_at_end(kafka, process.group)
    process.start(HUB_RULES_POLL_S="1")
    yield process
    process.cleanup()


async def test_a_threshold_edited_in_the_browser_raises_on_the_next_reading(
    page: Page, feed: HubFeed, worker: HubWorkerProcess, db: asyncpg.Connection, kafka: str
) -> None:
    device = f"cnc-{uuid.uuid4().hex[:8]}"

    async def ready() -> bool:
        assert worker.running(), worker.log()
        return worker.count("worker_ready") > 0 and worker.count("partitions_assigned") > 0

    await async_wait_until(ready, 60, f"worker ready ({worker.log_path})")
    await send_readings(kafka, [reading(device, now_ms(), "cnc_spindle", spindle_temp_c=70.0)])

    async def seen() -> bool:
        return await db.fetchval("SELECT 1 FROM devices WHERE device_id = $1", device) is not None

    await async_wait_until(seen, 30, f"the worker ingests {device}")
    assert await db.fetch("SELECT 1 FROM alerts WHERE device_id = $1", device) == []

    await feed.add_user("ada", "admin")
    page.login("ada", PASSWORD)
    page.open("/rules")
    page.text_shown("Rules in force: version 0")
    page.click(f"rule-edit-{SLUG}")
    warn_high = page.field("rule-field-warn_high")
    page.wait(lambda _: warn_high.is_displayed())
    retype(warn_high, "90")  # above crit_high 85: refused, next to the field
    page.click("rule-save")
    page.wait(lambda _: "must be below crit_high" in page.find("rule-error-warn_high").text)
    assert await db.fetchval("SELECT count(*) FROM rule_versions") == 0

    retype(warn_high, "65")
    page.field("rule-comment", "textarea").send_keys("warn earlier on this line")
    page.click("rule-save")
    page.text_shown("Rules in force: version 1")
    page.text_shown("warn above 65")

    async def reloaded() -> bool:
        return any(
            "event=rules_reloaded" in line and " version=1 " in line
            for line in worker.log().splitlines()
        )

    await async_wait_until(reloaded, 30, f"the worker reloads version 1 ({worker.log_path})")
    await send_readings(kafka, [reading(device, now_ms(), "cnc_spindle", spindle_temp_c=70.0)])

    async def raised() -> bool:
        rows = await db.fetch(
            "SELECT rule, severity, state FROM alerts WHERE device_id = $1", device
        )
        return [tuple(r) for r in rows] == [(RULE, "warning", "active")]

    await async_wait_until(raised, 30, "the same reading raises a warning after the edit")
    assert worker.errors() == []

    page.click("diff-show")
    page.text_shown("cnc_spindle spindle_temp_c.threshold: warn_high 75 -> 65")
    page.script("window.scrollTo(0, 0)")
    # Toasts of alerts other tests publish on the shared live channel are not this page's.
    page.script("document.querySelectorAll('.q-notification').forEach((n) => n.remove())")
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "rules.png"
    assert page.driver.save_screenshot(str(shot))
    assert png_size(shot) == WINDOW
