"""The overview page on the app and its in-memory stores, with NiceGUI's in-process `user`
fixture."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing.user import User

from protocol.models import ConnectorMetrics
from tests.support.feed import HubFeed, now_ms, reading
from tests.support.pages import login


async def test_overview_shows_devices_gateways_and_alerts(user: User, feed: HubFeed) -> None:
    t = now_ms()
    await feed.ingest(
        [
            reading("cnc-7", t - 2000, {"spindle_temp_c": 61.2, "running": True}),
            reading(
                "belt-3",
                t - 1000,
                {"belt_speed_m_s": 1.25, "jammed": False},
                type="conveyor",
                site="site-2",
            ),
        ]
    )
    await feed.heartbeat("gw-north", buffer_depth=1234, buffer_bytes=5 << 20, forwarded_rate=42.0)
    await feed.heartbeat(
        "gw-south",
        buffer_runway_s=5400.0,
        kafka_connected=False,
        connectors=[
            ConnectorMetrics(name="press-plc", kind="opcua", connected=True, values_rate=12.5)
        ],
    )
    await feed.raise_alert("cnc-7", metric="spindle_temp_c", value=91.0, severity="critical")
    await feed.add_user("vera", "viewer")

    await login(user, "vera")
    await user.should_see(marker="device-list", retries=30)
    await user.should_see("cnc-7")
    await user.should_see("belt-3")
    await user.should_see("61.2 °C")
    await user.should_see("1.25 m/s")
    await user.should_see("gw-north")
    await user.should_see("backlog 1,234 (5.0 MiB), oldest 12 s")
    await user.should_see("in 42.00/s, forwarded 42.00/s")
    await user.should_see("runway: buffer not growing")
    await user.should_see("runway: full in 1.5 h")
    await user.should_see("opcua press-plc: up, 12.5 values/s")
    critical = user.find(marker="count-critical-alerts").elements.pop()
    assert isinstance(critical, ui.label)
    assert critical.text == "1"
    await user.should_see("2 devices")


async def test_live_readings_update_values_and_new_devices_appear(
    user: User, feed: HubFeed
) -> None:
    t = now_ms()
    await feed.ingest([reading("cnc-7", t - 5000, {"spindle_temp_c": 61.2})])
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.should_see("61.2 °C", retries=30)

    await feed.ingest([reading("cnc-7", t, {"spindle_temp_c": 64.5})])
    await user.should_see("64.5 °C", retries=20)  # applied on the next 250 ms tick
    await user.should_not_see("61.2 °C")

    await feed.ingest([reading("press-9", t, {"ram_pressure_bar": 180.0}, type="hydraulic_press")])
    await user.should_see("press-9", retries=50)  # the list is re-read within ~2 s
    await user.should_see("180.0 bar")


async def test_filters_and_search(user: User, feed: HubFeed) -> None:
    t = now_ms()
    await feed.ingest(
        [
            reading("cnc-1", t, {"spindle_temp_c": 50.0}),
            reading("cnc-2", t, {"spindle_temp_c": 51.0}, site="site-2"),
            reading("belt-1", t, {"belt_speed_m_s": 1.0}, type="conveyor"),
        ]
    )
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.should_see("3 devices", retries=30)

    await user.open("/?type=conveyor")
    await user.should_see("1 device", retries=30)
    await user.should_see("belt-1")
    await user.should_not_see("cnc-1")

    await user.open("/?site=site-2")
    await user.should_see("cnc-2", retries=30)
    await user.should_not_see("cnc-1")

    await user.open("/")
    await user.should_see("3 devices", retries=30)
    user.find(marker="search").type("cnc")
    await user.should_see("2 devices", retries=30)
    await user.should_not_see("belt-1")
