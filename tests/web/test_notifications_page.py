"""The notifications page in a real browser: an admin adds a channel and a route (bad input
refused naming the field, nothing applied), sends a test message to a real HTTP receiver, and
sees on the alerts page who was told of an alert. Writes docs/screenshots/notifications.png."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from hub.notify.config import parse_config
from hub.notify.dispatcher import Dispatcher
from hub.notify.senders import ChannelSender
from hub.storage.notify_postgres import PostgresNotifyStore
from hub.storage.postgres import Database
from tests.support.feed import PASSWORD, HubFeed
from tests.web.browser import Page

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on a thread of its own: the browser calls block this test's loop."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def _type(page: Page, testid: str, text: str) -> None:
    area = page.field(testid, "textarea")
    page.wait(lambda _: area.is_displayed())
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys(text)


def _rows(page: Page, table: str) -> list[str]:
    rows = page.find(table).find_elements(By.CSS_SELECTOR, "tbody tr")
    return [r.text for r in rows]


async def test_admin_edits_channels_and_routes_and_sends_a_test(
    page: Page, feed: HubFeed, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = receiver
    assert isinstance(feed.database, Database)
    store = PostgresNotifyStore(feed.database._pool)
    await store.seed_from_file(
        parse_config(
            {
                "channels": [
                    {"name": "night-mail", "type": "email", "host": "smtp.example.com",
                     "sender": "hub@example.com", "to": ["night-shift@example.com"],
                     "password": "${SMTP_PASSWORD}"},
                ],
                "routes": [
                    {"name": "critical-by-mail", "match": {"severity": ["critical"]},
                     "channels": ["night-mail"], "repeat_interval_s": 14400},
                ],
            }
        )
    )  # fmt: skip
    await feed.add_user("ada", "admin")
    page.login("ada", PASSWORD)
    page.click("nav-notifications")
    page.find("channel-table")
    page.text_shown("file (read-only)")

    page.script("document.querySelector('.q-expansion-item .q-item').click()")
    _type(page, "channel-text", f'{{name: ops-hook, type: webhook, url: "ftp://{url[7:]}"}}')
    page.click("channel-save")
    page.text_shown("url: not an http(s) URL with a host")
    assert not any("ops-hook" in r for r in _rows(page, "channel-table"))

    _type(page, "channel-text", f'{{name: ops-hook, type: webhook, url: "{url}"}}')
    page.click("channel-save")
    page.wait(lambda _: any("ops-hook" in r for r in _rows(page, "channel-table")))

    page.script("document.querySelectorAll('.q-expansion-item .q-item')[1].click()")
    _type(page, "route-text", "{name: plant-7, match: {site: [plant-7]}, channels: [pager]}")
    page.click("route-save")
    page.text_shown("channels[0]: unknown channel 'pager'")
    _type(
        page,
        "route-text",
        "{name: plant-7, match: {site: [plant-7]}, channels: [ops-hook, night-mail], "
        "escalate_after_s: 900}",
    )
    page.click("route-save")
    page.wait(lambda _: any("plant-7" in r for r in _rows(page, "route-table")))
    assert any("ops-hook → night-mail" in r for r in _rows(page, "route-table"))

    page.click("test-ops-hook")
    page.text_shown("Test message delivered on ops-hook")
    assert [b["notifications"][0]["event"] for b in bodies] == ["test"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert page.driver.save_screenshot(str(SHOTS / "notifications.png"))

    config = await store.load_config()
    assert [r.name for r in config.routes] == ["critical-by-mail", "plant-7"]
    entries = {e.name: e.source for e in await store.channel_entries()}
    assert entries == {"night-mail": "file", "ops-hook": "api"}


async def test_the_alert_shows_who_was_told(
    page: Page, feed: HubFeed, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = receiver
    assert isinstance(feed.database, Database)
    store = PostgresNotifyStore(feed.database._pool)
    await store.seed_from_file(
        parse_config(
            {
                "channels": [{"name": "ops-hook", "type": "webhook", "url": url}],
                "routes": [{"channels": ["ops-hook"]}],
            }
        )
    )
    alert = await feed.raise_alert("cnc-7", metric="spindle_temp_c", value=95.0)
    sender = ChannelSender(public_url=None)
    now = int(time.time() * 1000)
    dispatcher = Dispatcher(store, sender, clock_ms=lambda: now, public_url=None, retry_max_s=1)
    assert await dispatcher.run_once() == 1
    await sender.close()
    await feed.add_user("olga", "operator")
    page.login("olga", PASSWORD)
    page.open("/alerts")
    page.click(f"notified-{alert.id}")
    page.wait(lambda _: page.find("attempts-table").is_displayed())
    (row,) = _rows(page, "attempts-table")
    assert "ops-hook" in row
    assert "firing" in row
    assert "delivered" in row
    assert len(bodies) == 1
