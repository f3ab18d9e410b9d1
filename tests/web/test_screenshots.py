"""The README's screenshots, made by the browser at laptop size on realistic data: the five
simulator machines with three hours of history from their own models, two gateways, an active
critical alert and a warning, and live readings arriving. Written to docs/screenshots/."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.support.feed import PASSWORD, HubFeed, now_ms, simulated_history
from tests.web.browser import WINDOW, Page

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SITE = "hall-a"
GATEWAY = "edge-hall-a"
HOUR = 3_600_000


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def test_screenshots_of_the_overview_and_a_device(page: Page, feed: HubFeed) -> None:
    end = now_ms()
    history = simulated_history(end_ms=end, hours=3, step_s=5, site=SITE, gateway_id=GATEWAY)
    # The newest 30 s of one machine are held back, to arrive live while its page is open.
    held = [r for r in history if r.device_id == "cnc-01" and r.ts > end - 30_000]
    history = [r for r in history if r not in held]
    for start in range(0, len(history), 2000):
        await feed.ingest(history[start : start + 2000], publish=False)
    await feed.rollups(end - 3 * HOUR)
    await feed.heartbeat(GATEWAY, site=SITE, forwarded_rate=5.0)
    await feed.heartbeat(
        "edge-hall-b", site="hall-b", buffer_depth=18_240, buffer_bytes=9 << 20,
        forwarded_rate=0.0, kafka_connected=False,
    )  # fmt: skip
    await feed.raise_alert(
        "cnc-01",
        rule="cnc_spindle.spindle_temp_c.threshold",
        severity="critical",
        metric="spindle_temp_c",
        value=84.6,
        message="spindle_temp_c 84.6 °C above the critical limit 80 °C",
        ts=end - 25 * 60_000,
        gateway_id=GATEWAY,
    )
    await feed.raise_alert(
        "compressor-01",
        rule="air_compressor.dew_point_c.threshold",
        severity="warning",
        metric="dew_point_c",
        value=10.8,
        message="dew_point_c 10.8 °C above the warning limit 10 °C",
        ts=end - 70 * 60_000,
        gateway_id=GATEWAY,
    )
    await feed.add_user("olga", "operator")
    page.login("olga", PASSWORD)

    page.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="device-row"]')) == 5)
    page.text_shown(GATEWAY)
    # Every sparkline drawn (an SVG polyline with points) before the picture is taken.
    page.wait(
        lambda d: (
            d.execute_script(
                "return [...document.querySelectorAll('.iot-spark polyline')]"
                ".filter(p => (p.getAttribute('points') || '').length > 20).length"
            )
            == 5
        )
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    overview = SHOTS / "overview.png"
    assert page.driver.save_screenshot(str(overview))

    page.open("/device/cnc-01")
    page.find("device-title")
    page.wait(lambda _: page.chart_points("spindle_load_pct") > 100, timeout=20)
    shown = page.chart_points("spindle_load_pct")
    await feed.ingest(held)
    page.wait(lambda _: page.chart_points("spindle_load_pct") > shown, timeout=5)
    device = SHOTS / "device.png"
    assert page.driver.save_screenshot(str(device))

    for shot in (overview, device):
        assert png_size(shot) == WINDOW
