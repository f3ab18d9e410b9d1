"""Shelving an alert and creating a maintenance window that then shows as active, in headless
Chromium on a real `iot-hub web` process (docs/alarms.md). Also the screenshots of both pages
in docs/screenshots/ (alerts-shelved.png, maintenance.png)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from hub.storage.postgres import Database
from tests.support.feed import PASSWORD, HubFeed, now_ms, reading
from tests.web.browser import Page

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def pool(feed: HubFeed) -> asyncpg.Pool:
    assert isinstance(feed.database, Database)  # these tests run on the real stores
    return feed.database.pool


@pytest.fixture
async def no_windows(feed: HubFeed) -> AsyncIterator[HubFeed]:
    """The stores without maintenance windows (the shared fixtures do not know the table)."""
    await pool(feed).execute("TRUNCATE maintenance_windows RESTART IDENTITY")
    yield feed
    await pool(feed).execute("TRUNCATE maintenance_windows RESTART IDENTITY")


async def test_an_operator_shelves_an_alert(page: Page, feed: HubFeed) -> None:
    await feed.ingest([reading("cnc-7", now_ms(), {"spindle_temp_c": 95.0})], publish=False)
    alert = await feed.raise_alert(
        "cnc-7",
        rule="cnc_spindle.spindle_temp_c.threshold",
        metric="spindle_temp_c",
        value=95.0,
        message="spindle_temp_c 95.0 °C above the critical limit 85 °C",
    )
    await feed.raise_alert("press-2", rule="press.pressure", severity="warning")
    await feed.add_user("olga", "operator")
    page.login("olga", PASSWORD)
    page.open("/alerts")
    page.find(f"alert-{alert.id}")
    page.click(f"shelve-{alert.id}")
    reason = page.field("shelve-reason", "textarea")
    page.wait(lambda _: reason.is_displayed())
    reason.send_keys("thermocouple cable loose, fitter on the way")
    page.click("shelve-confirm")
    page.text_shown("shelved by olga until")
    page.find("shelved-badge")
    page.find(f"unshelve-{alert.id}")
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_by == "olga"
    assert row.shelve_reason == "thermocouple cable loose, fitter on the way"
    assert row.shelved(now_ms())
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert page.driver.save_screenshot(str(SHOTS / "alerts-shelved.png"))

    page.click(f"unshelve-{alert.id}")
    page.find(f"shelve-{alert.id}")
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_until is None


async def test_an_admin_creates_a_window_that_shows_as_active(
    page: Page, no_windows: HubFeed
) -> None:
    feed = no_windows
    await feed.ingest([reading("press-2", now_ms(), {"pressure_bar": 180.0}, site="hall-b")])
    await feed.add_user("ada", "admin")
    page.login("ada", PASSWORD)
    page.open("/maintenance")
    page.find("no-windows")
    page.click("window-new")
    name = page.field("window-name-input")
    page.wait(lambda _: name.is_displayed())
    name.send_keys("Hall B hydraulics service")
    page.field("window-scope-sites").send_keys("hall-b")
    page.field("window-comment").send_keys("change 4711")
    page.click("window-save")
    badge = page.find("window-active-badge")
    assert "active until" in badge.text
    page.text_shown("Hall B hydraulics service")
    windows = await pool(feed).fetch("SELECT name, scope FROM maintenance_windows")
    assert [w["name"] for w in windows] == ["Hall B hydraulics service"]
    assert page.driver.save_screenshot(str(SHOTS / "maintenance.png"))

    page.open("/")
    banner = page.find("window-banner")
    assert "Hall B hydraulics service" in banner.text
    page.open("/device/press-2")
    assert "Hall B hydraulics service" in page.find("window-banner").text
