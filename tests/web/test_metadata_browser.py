"""Device metadata edited in the browser shows on the device page: headless Chromium on
`iot-hub web` (PostgreSQL, Redis) sets a metric's unit and display name on /metadata; the
device page then shows them. Also the metadata page's screenshot for the docs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.feed import PASSWORD, HubFeed, now_ms, reading
from tests.web.browser import WINDOW, Page
from tests.web.test_screenshots import SHOTS, png_size

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(web_database_url: str, feed: HubFeed) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(web_database_url)
    await conn.execute("TRUNCATE device_metadata")
    yield conn
    await conn.close()


async def test_a_unit_and_name_edited_in_the_browser_show_on_the_device_page(
    page: Page, feed: HubFeed, db: asyncpg.Connection
) -> None:
    device = f"cnc-{uuid.uuid4().hex[:6]}"
    await feed.ingest([reading(device, now_ms(), {"spindle_temp_c": 61.5})], publish=False)
    await feed.add_user("ada", "admin")
    page.login("ada", PASSWORD)

    page.open(f"/metadata?device={device}")
    page.find("field-metrics.spindle_temp_c.unit")
    page.field("field-metrics.spindle_temp_c.unit").send_keys("K")
    page.field("field-metrics.spindle_temp_c.display_name").send_keys("Bearing temperature")
    page.field("field-area").send_keys("Machining")
    page.click("metadata-save")
    page.text_shown(f"Saved the metadata of device {device}")
    stored = await db.fetchval(
        "SELECT document->'metrics'->'spindle_temp_c'->>'unit' FROM device_metadata "
        "WHERE scope = 'device' AND key = $1 AND source = 'admin'",
        device,
    )
    assert stored == "K"
    page.script("window.scrollTo(0, 0)")
    page.script("document.querySelectorAll('.q-notification').forEach((n) => n.remove())")
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "metadata.png"
    assert page.driver.save_screenshot(str(shot))
    assert png_size(shot) == WINDOW

    page.open(f"/device/{device}")
    label = page.find("metric-label-spindle_temp_c")
    page.wait(lambda _: label.text == "Bearing temperature (spindle_temp_c)")
    page.text_shown("61.5 K")
    page.text_shown("Machining")
