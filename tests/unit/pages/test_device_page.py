"""The device page on the app and its in-memory stores, with NiceGUI's in-process `user`
fixture: history per range, live points appended with extendTraces (never a whole-figure
resend), alert markers, CSV export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nicegui import Client, ui
from nicegui.element import Element
from nicegui.testing.user import User

from tests.support.feed import HubFeed, now_ms, reading
from tests.support.pages import login
from tests.support.waiting import async_wait_until

MINUTE = 60_000


def chart(user: User, metric: str) -> ui.plotly:
    element = user.find(marker=f"chart-{metric}").elements.pop()
    assert isinstance(element, ui.plotly)
    return element


def line(plot: ui.plotly) -> dict[str, Any]:
    figure = plot.figure
    assert isinstance(figure, dict)
    trace: dict[str, Any] = figure["data"][0]
    return trace


def label_text(user: User, marker: str) -> str:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.label)
    return str(element.text)


@contextmanager
def recorded(client: Client) -> Iterator[tuple[list[str], list[int]]]:
    """What the page sends its browser: JavaScript run (run_plot_method goes this way) and the
    ids of elements whose whole state is resent."""
    scripts: list[str] = []
    updated: list[int] = []
    outbox = client.outbox
    enqueue_message, enqueue_update = outbox.enqueue_message, outbox.enqueue_update

    def on_message(message_type: Any, data: Any, target_id: Any) -> None:
        if message_type == "run_javascript":
            scripts.append(data["code"])
        enqueue_message(message_type, data, target_id)

    def on_update(element: Element) -> None:
        updated.append(element.id)
        enqueue_update(element)

    outbox.enqueue_message = on_message  # type: ignore[method-assign]
    outbox.enqueue_update = on_update  # type: ignore[method-assign]
    try:
        yield scripts, updated
    finally:
        outbox.enqueue_message = enqueue_message  # type: ignore[method-assign]
        outbox.enqueue_update = enqueue_update  # type: ignore[method-assign]


async def open_device(user: User, device_id: str) -> Client:
    client = await user.open(f"/device/{device_id}")
    await user.should_see(marker="device-title", retries=30)

    async def loaded() -> bool:
        return "points" in label_text(user, "status")

    await async_wait_until(loaded, timeout=10, what="the first range load")
    return client


async def test_history_then_live_points_are_appended_not_resent(user: User, feed: HubFeed) -> None:
    t = now_ms()
    history = [
        reading("cnc-7", t - 10 * MINUTE + i * 1000, {"spindle_temp_c": 50.0 + i % 7})
        for i in range(600)
    ]
    await feed.ingest(history, publish=False)
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    client = await open_device(user, "cnc-7")
    plot = chart(user, "spindle_temp_c")
    assert len(line(plot)["y"]) == 600  # 10 minutes at 1 Hz fit the chart whole
    assert "raw readings" in label_text(user, "status")

    with recorded(client) as (scripts, updated):
        await feed.ingest([reading("cnc-7", t + 1000, {"spindle_temp_c": 77.5})])
        await feed.ingest([reading("cnc-7", t + 2000, {"spindle_temp_c": 78.5})])

        async def appended() -> bool:
            return len(line(plot)["y"]) == 602

        async def extended() -> bool:
            return any("extendTraces" in s for s in scripts)

        await async_wait_until(appended, timeout=2, what="two live points on the chart")
        await async_wait_until(extended, timeout=2, what="extendTraces sent")
    assert line(plot)["y"][-2:] == [77.5, 78.5]
    extends = [s for s in scripts if "extendTraces" in s]
    assert all(f"runMethod({plot.id}," in s for s in extends)
    sent = [json.loads(s[s.index("[") : s.rindex(")")]) for s in extends]
    assert sum(len(args[1]["y"][0]) for args in sent) == 2  # the new points, nothing else
    assert plot.id not in updated  # the figure itself was never resent
    await user.should_see("78.5 °C")  # the latest value in the header, live too


async def test_long_ranges_read_rollups_and_custom_ranges_are_checked(
    user: User, feed: HubFeed
) -> None:
    t = now_ms()
    start = t - 8 * 60 * MINUTE
    history = [
        reading("cnc-7", ts, {"spindle_temp_c": 40.0 + (ts // MINUTE) % 30})
        for ts in range(start, t, 20_000)
    ]
    await feed.ingest(history, publish=False)
    await feed.rollups(start)
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await open_device(user, "cnc-7")
    plot = chart(user, "spindle_temp_c")

    toggle = user.find(marker="range").elements.pop()
    assert isinstance(toggle, ui.toggle)
    toggle.value = "24 h"

    async def rollups_shown() -> bool:
        return "1-minute rollups" in label_text(user, "status")

    await async_wait_until(rollups_shown, timeout=10, what="the 24 h range from readings_1m")
    values = line(plot)["y"]
    assert 2 <= len(values) <= 1440  # downsampled to about the chart's width (1440 / 2 px)
    assert min(values) == 40.0
    assert max(values) == 69.0  # the extremes survive the downsampling

    toggle.value = "1 year"

    async def daily_shown() -> bool:
        return "daily rollups" in label_text(user, "status")

    await async_wait_until(daily_shown, timeout=10, what="the 1 year range from readings_1d")
    values = line(plot)["y"]
    assert (min(values), max(values)) == (40.0, 69.0)  # today from the finer tiers

    toggle.value = "custom"
    await user.should_see(marker="custom-start")
    user.find(marker="custom-start").clear().type("2026-01-02T10:00")
    user.find(marker="custom-end").clear().type("2026-01-01T10:00")
    user.find(marker="custom-apply").click()
    await user.should_see("the start must be before the end")


async def test_alert_markers_and_csv_export(user: User, feed: HubFeed) -> None:
    t = now_ms()
    await feed.ingest(
        [
            reading("cnc-7", t - 5 * MINUTE + i * 10_000, {"spindle_temp_c": 60.0 + i})
            for i in range(30)
        ],
        publish=False,
    )
    await feed.raise_alert(
        "cnc-7", metric="spindle_temp_c", value=88.0, ts=t - 2 * MINUTE, message="too <b>hot</b>"
    )
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await open_device(user, "cnc-7")
    plot = chart(user, "spindle_temp_c")
    figure = plot.figure
    assert isinstance(figure, dict)
    critical = figure["data"][2]
    assert len(critical["x"]) == 1
    assert "too &lt;b&gt;hot&lt;/b&gt;" in critical["text"][0]  # Plotly would render the tags

    user.find(marker="csv").click()
    response = await user.download.next(timeout=5)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 30
    assert rows[0]["device_id"] == "cnc-7"
    assert rows[0]["metric"] == "spindle_temp_c"
    assert float(rows[-1]["value"]) == 89.0
    assert rows[0]["time_utc"].endswith("Z")


async def test_live_alert_adds_a_marker(user: User, feed: HubFeed) -> None:
    t = now_ms()
    await feed.ingest([reading("cnc-7", t - 1000, {"spindle_temp_c": 60.0})], publish=False)
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    client = await open_device(user, "cnc-7")
    plot = chart(user, "spindle_temp_c")
    with recorded(client) as (scripts, _):
        await feed.raise_alert("cnc-7", metric="spindle_temp_c", value=95.0, severity="critical")

        async def marked() -> bool:
            figure = plot.figure
            assert isinstance(figure, dict)
            return len(figure["data"][2]["x"]) == 1 and any("extendTraces" in s for s in scripts)

        await async_wait_until(marked, timeout=2, what="a live alert marker")
    await user.should_see("Critical alert on cnc-7: value out of range")
