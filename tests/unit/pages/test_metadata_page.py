"""The metadata editor and its effect on the device page, on the app and its in-memory stores,
with NiceGUI's in-process `user`: an admin's bad range refused next to the field (nothing
stored), a unit and display name saved (audited) and then shown on the device page; read-only
for a viewer."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing.user import User

from hub.storage.audit_model import AuditFilter
from tests.support.feed import HubFeed, now_ms, reading
from tests.support.pages import login, web_services
from tests.support.waiting import async_wait_until


def field(user: User, path: str) -> ui.input:
    element = user.find(marker=f"field-{path}").elements.pop()
    assert isinstance(element, ui.input)
    return element


def text_of(user: User, marker: str) -> str:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.label)
    return str(element.text)


async def test_admin_edits_a_device_and_the_device_page_shows_it(user: User, feed: HubFeed) -> None:
    await feed.ingest([reading("cnc-7", now_ms(), {"spindle_temp_c": 61.0})])
    await feed.add_user("ada", "admin")
    await login(user, "ada")
    await user.open("/metadata?device=cnc-7")
    await user.should_see(marker="metadata-title", retries=30)
    assert field(user, "metrics.spindle_temp_c.unit").props["placeholder"] == "°C"

    user.find(marker="field-metrics.spindle_temp_c.normal.min").type("90")
    user.find(marker="field-metrics.spindle_temp_c.normal.max").type("10")
    user.find(marker="metadata-save").click()

    async def refused() -> bool:
        props = field(user, "metrics.spindle_temp_c.normal.min").props
        return "greater than max" in str(props.get("error-message", ""))

    await async_wait_until(refused, 5, "the problem next to the range's min")
    services = web_services()
    assert await services.metadata_store.entries("device") == []

    user.find(marker="field-metrics.spindle_temp_c.normal.min").clear()
    user.find(marker="field-metrics.spindle_temp_c.normal.max").clear()
    user.find(marker="field-metrics.spindle_temp_c.unit").type("K")
    user.find(marker="field-metrics.spindle_temp_c.display_name").type("Bearing temp")
    user.find(marker="field-area").type("Machining")
    user.find(marker="metadata-save").click()
    await user.should_see("Saved the metadata of device cnc-7", retries=30)
    (entry,) = await services.metadata_store.entries("device")
    assert entry.document["metrics"]["spindle_temp_c"] == {
        "display_name": "Bearing temp",
        "unit": "K",
    }
    audit = await services.audit.entries(AuditFilter(action="metadata.edit"))
    assert any(e.action == "metadata.edit" and e.target == "device:cnc-7" for e in audit.items)

    await user.open("/device/cnc-7")
    await user.should_see(marker="device-title", retries=30)
    assert text_of(user, "metric-label-spindle_temp_c") == "Bearing temp (spindle_temp_c)"
    assert "Machining" in text_of(user, "device-place")

    async def unit_shown() -> bool:
        return text_of(user, "value-spindle_temp_c").endswith(" K")

    await async_wait_until(unit_shown, 10, "the value with the edited unit")


async def test_a_viewer_sees_the_form_read_only(user: User, feed: HubFeed) -> None:
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/metadata?type=conveyor")
    await user.should_see(marker="metadata-title", retries=30)
    await user.should_see("Only admins edit device metadata")
    await user.should_not_see(marker="metadata-save")
    assert "readonly" in field(user, "metrics.belt_speed_m_s.unit").props


def listed(user: User) -> list[str]:
    return sorted(
        str(link.text)
        for link in user.find(marker="device-link").elements
        if isinstance(link, ui.link)
    )


async def test_the_overview_filters_by_place(user: User, feed: HubFeed) -> None:
    now = now_ms()
    for device_id in ("cnc-1", "cnc-2", "cnc-3"):
        await feed.ingest([reading(device_id, now, {"spindle_temp_c": 50.0})], publish=False)
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    store = web_services().metadata_store
    await store.put(
        "device",
        "cnc-1",
        "admin",
        {
            "display_name": "Mill one",
            "area": "Machining",
            "line": "L1",
            "metrics": {"spindle_temp_c": {"unit": "K"}},
        },
        "ada",
    )
    await store.put("device", "cnc-2", "edge", {"area": "Machining", "line": "L2"}, "gw")

    await user.open("/?area=Machining&line=L2")
    await user.should_see(marker="device-list", retries=30)

    async def only(expected: list[str]) -> bool:
        return listed(user) == expected

    await async_wait_until(lambda: only(["cnc-2"]), 10, "only the device on line L2")
    await user.open("/?area=Machining")
    await async_wait_until(lambda: only(["cnc-1", "cnc-2"]), 10, "the devices of the area")
    await user.should_see("Mill one")
    await user.should_see("50.0 K")  # the edited unit; cnc-2 keeps the packaged one
    await user.should_see("50.0 °C")
    await user.open("/")
    await async_wait_until(lambda: only(["cnc-1", "cnc-2", "cnc-3"]), 10, "every device")
    select = user.find(marker="place-filter").elements.pop()
    assert isinstance(select, ui.select)
    assert "Machining > L1" in select.options.values()  # type: ignore[union-attr]
