"""Shelving, bulk actions, the maintenance windows page and the active-window banner, on the app
and its in-memory stores with NiceGUI's in-process `user` (docs/alarms.md)."""

from __future__ import annotations

from nicegui import ElementFilter, ui
from nicegui.testing.user import User

from hub.alarms.memory import MemoryAlarmStore
from hub.alarms.windows import Once, Scope, Weekly, WindowSpec
from tests.support.feed import HubFeed, now_ms, reading
from tests.support.pages import login, web_services
from tests.support.waiting import async_wait_until

HOUR = 3_600_000


async def dialog_opened(user: User) -> None:
    async def opened() -> bool:
        with user:
            return any(d.value for d in ElementFilter(kind=ui.dialog, local_scope=False))

    await async_wait_until(opened, timeout=5, what="the dialog to open")


async def test_an_operator_shelves_and_unshelves_an_alert(user: User, feed: HubFeed) -> None:
    alert = await feed.raise_alert("cnc-7")
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert.id}", retries=30)

    user.find(marker=f"shelve-{alert.id}").click()
    await dialog_opened(user)
    user.find(marker="shelve-confirm").click()  # no reason yet: refused, nothing applied
    await user.should_see("reason is required", retries=30)
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_until is None

    user.find(marker="shelve-reason").type("sensor cable loose, fitter on the way")
    user.find(marker="shelve-confirm").click()
    await user.should_see(marker="shelved-badge", retries=30)
    await user.should_see("shelved by olga until")
    await user.should_see("sensor cable loose, fitter on the way")
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_by == "olga"
    assert row.shelved_until is not None
    assert abs(row.shelved_until - (now_ms() + 2 * HOUR)) < 60_000  # the default 2 hours

    user.find(marker=f"unshelve-{alert.id}").click()
    await user.should_not_see(marker="shelved-badge", retries=30)
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_until is None


async def test_a_viewer_cannot_shelve_even_by_a_forged_click(user: User, feed: HubFeed) -> None:
    alert = await feed.raise_alert("cnc-7")
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert.id}", retries=30)
    await user.should_not_see(marker="bulk-bar")
    user.find(marker=f"shelve-{alert.id}").trigger("click")
    await user.should_see("Viewers cannot shelve or acknowledge alerts.", retries=30)
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert row.shelved_until is None


async def test_bulk_acknowledge_of_every_matching_alert(user: User, feed: HubFeed) -> None:
    alerts = [await feed.raise_alert(f"cnc-{i}") for i in range(3)]
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alerts[-1].id}", retries=30)
    user.find(marker="bulk-all").click()
    await user.should_see("3 selected", retries=30)
    user.find(marker="bulk-ack").click()
    await dialog_opened(user)
    user.find(marker="bulk-ack-comment").type("known: compressor maintenance")
    user.find(marker="bulk-ack-confirm").click()
    await user.should_see("Acknowledged 3 alerts.", retries=30)
    for a in alerts:
        row = await feed.database.get_alert(a.id)
        assert row is not None
        assert (row.acknowledged, row.ack_comment) == (True, "known: compressor maintenance")


async def test_bulk_shelve_of_selected_alerts(user: User, feed: HubFeed) -> None:
    first, second, third = [await feed.raise_alert(f"cnc-{i}") for i in range(3)]
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{third.id}", retries=30)
    user.find(marker=f"select-{first.id}").click()
    user.find(marker=f"select-{third.id}").click()
    await user.should_see("2 selected", retries=30)
    user.find(marker="bulk-shelve").click()
    await dialog_opened(user)
    user.find(marker="shelve-reason").type("night shift")
    user.find(marker="shelve-confirm").click()
    await user.should_see("Shelved 2 alerts.", retries=30)
    shelved = {a.id: (await feed.database.get_alert(a.id)) for a in (first, second, third)}
    assert {i for i, row in shelved.items() if row is not None and row.shelved(now_ms())} == {
        first.id,
        third.id,
    }


async def test_an_admin_creates_a_window_that_shows_as_active(user: User, feed: HubFeed) -> None:
    await feed.ingest([reading("press-2", now_ms(), {"pressure_bar": 200.0}, site="plant-a")])
    await feed.add_user("ada", "admin")
    await login(user, "ada")
    await user.open("/maintenance")
    await user.should_see(marker="no-windows", retries=30)
    user.find(marker="window-new").click()
    await dialog_opened(user)
    user.find(marker="window-name-input").type("Press line overhaul")
    user.find(marker="window-save").click()  # no scope yet: refused, naming it
    await user.should_see("scope must list at least one", retries=30)
    user.find(marker="window-scope-sites").type("plant-a")
    user.find(marker="window-save").click()
    await user.should_see(marker="window-active-badge", retries=30)
    await user.should_see("Press line overhaul")

    await user.open("/")
    await user.should_see(marker="window-banner", retries=30)
    await user.should_see("Press line overhaul: until")
    await user.open("/device/press-2")
    await user.should_see(marker="window-banner", retries=30)
    await user.open("/device/other-9")  # unknown device: no banner either way
    await user.should_not_see(marker="window-banner")


async def test_a_viewer_sees_windows_but_cannot_change_them(user: User, feed: HubFeed) -> None:
    store = web_services().alarms.store
    assert isinstance(store, MemoryAlarmStore)
    spec = WindowSpec(
        "Boiler inspection", "notifications", Once(now_ms() - HOUR, now_ms() + HOUR), Scope(("x",))
    )
    await store.create_window(spec, "ada")
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/maintenance")
    await user.should_see("Boiler inspection", retries=30)
    await user.should_see(marker="window-active-badge")
    new = user.find(marker="window-new").elements.pop()
    assert isinstance(new, ui.button)
    assert not new.enabled
    await user.should_not_see(marker="window-edit-1")
    user.find(marker="window-new").trigger("click")
    await user.should_see("Only admins create, edit and delete maintenance windows.", retries=30)


def element(user: User, marker: str) -> ui.element:
    return user.find(marker=marker).elements.pop()


async def test_an_admin_makes_a_window_weekly_then_deletes_it(user: User, feed: HubFeed) -> None:
    store = web_services().alarms.store
    spec = WindowSpec(
        "Boiler inspection", "notifications", Once(now_ms() - HOUR, now_ms() + HOUR), Scope(("x",))
    )
    window = await store.create_window(spec, "ada")
    await feed.add_user("ada", "admin")
    await login(user, "ada")
    await user.open("/maintenance")
    await user.should_see(marker=f"window-edit-{window.id}", retries=30)
    user.find(marker=f"window-edit-{window.id}").click()
    await dialog_opened(user)
    with user:
        element(user, "window-kind").value = "weekly"  # type: ignore[attr-defined]
        element(user, "window-weekdays").value = [6, 5]  # type: ignore[attr-defined]
        element(user, "window-at").value = "23:30"  # type: ignore[attr-defined]
        element(user, "window-minutes").value = 90  # type: ignore[attr-defined]
        element(user, "window-zone").value = "Mars/Olympus"  # type: ignore[attr-defined]
    user.find(marker="window-save").click()
    await user.should_see("schedule.timezone must be an IANA time zone name", retries=30)
    with user:
        element(user, "window-zone").value = "Europe/Berlin"  # type: ignore[attr-defined]
    user.find(marker="window-save").click()
    await user.should_see("weekly, Sat, Sun at 23:30 (Europe/Berlin) for 1 h 30 min", retries=30)
    saved = await store.window(window.id)
    assert saved is not None
    assert saved.spec.schedule == Weekly((5, 6), "23:30", 90, "Europe/Berlin")
    assert (saved.created_by, saved.updated_by) == ("ada", "ada")

    user.find(marker=f"window-delete-{window.id}").click()
    await user.should_see(marker="no-windows", retries=30)
    assert await store.windows() == []
