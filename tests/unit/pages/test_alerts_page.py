"""The alerts page on the app and its in-memory stores, with NiceGUI's in-process `user` fixture:
acknowledge and clear by role, the server-side role check, live updates, new critical alerts."""

from __future__ import annotations

from nicegui import ElementFilter, ui
from nicegui.testing.user import User

from tests.support.feed import HubFeed, now_ms, reading
from tests.support.pages import login
from tests.support.waiting import async_wait_until


def button(user: User, marker: str) -> ui.button:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.button)
    return element


async def dialog_opened(user: User) -> None:
    async def opened() -> bool:
        with user:
            return any(d.value for d in ElementFilter(kind=ui.dialog, local_scope=False))

    await async_wait_until(opened, timeout=5, what="the dialog to open")


async def test_operator_acknowledges_with_a_comment_and_clears(user: User, feed: HubFeed) -> None:
    await feed.ingest([reading("cnc-7", now_ms(), {"spindle_temp_c": 95.0})], publish=False)
    alert = await feed.raise_alert("cnc-7", metric="spindle_temp_c", value=95.0)
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert.id}", retries=30)

    user.find(marker=f"ack-{alert.id}").click()
    await dialog_opened(user)
    user.find(marker="ack-comment").type("coolant pump swapped")
    user.find(marker="ack-confirm").click()
    await user.should_see("acknowledged by olga", retries=30)
    await user.should_see("coolant pump swapped")
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert (row.acknowledged, row.ack_by, row.ack_comment) == (True, "olga", "coolant pump swapped")
    assert row.state == "active"

    user.find(marker=f"clear-{alert.id}").click()
    await dialog_opened(user)
    user.find(marker="clear-confirm").click()
    await user.should_see("Cleared alert", retries=30)
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert (row.state, row.cleared_by) == ("cleared", "olga")
    await user.should_see("No alerts match.")  # the default filter shows active alerts only


async def test_viewer_cannot_acknowledge_even_by_a_forged_click(user: User, feed: HubFeed) -> None:
    alert = await feed.raise_alert("cnc-7")
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert.id}", retries=30)
    await user.should_see(marker="viewer-note")
    ack, clear = button(user, f"ack-{alert.id}"), button(user, f"clear-{alert.id}")
    assert not ack.enabled
    assert not clear.enabled

    # What a tampered browser could send: the click event of the disabled buttons.
    user.find(marker=f"ack-{alert.id}").trigger("click")
    await user.should_see("Viewers cannot acknowledge or clear alerts.", retries=30)
    user.find(marker=f"clear-{alert.id}").trigger("click")
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert not row.acknowledged
    assert row.state == "active"


async def test_a_demoted_operator_is_refused_at_the_click(user: User, feed: HubFeed) -> None:
    alert = await feed.raise_alert("cnc-7")
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert.id}", retries=30)
    assert button(user, f"ack-{alert.id}").enabled

    await feed.add_user("olga", "viewer")  # role changed while the page is open
    user.find(marker=f"ack-{alert.id}").click()
    await user.should_see("Viewers cannot acknowledge or clear alerts.", retries=30)
    row = await feed.database.get_alert(alert.id)
    assert row is not None
    assert not row.acknowledged


async def test_new_critical_alerts_stand_out_live(user: User, feed: HubFeed) -> None:
    old = await feed.raise_alert("cnc-1", rule="old.rule", severity="critical")
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{old.id}", retries=30)
    badge = user.find(marker="critical-count").elements.pop()
    assert isinstance(badge, ui.badge)
    assert badge.text == "1"
    await user.should_not_see(marker="new-badge")

    new = await feed.raise_alert("press-2", rule="press.pressure", message="ram pressure 260 bar")
    await user.should_see(marker=f"alert-{new.id}", retries=30)
    await user.should_see("Critical alert on press-2: ram pressure 260 bar")  # the toast
    with user.scope(marker=f"alert-{new.id}"):
        await user.should_see(marker="new-badge")
    card = user.find(marker=f"alert-{new.id}").elements.pop()
    assert "iot-new-critical" in card.classes

    async def two() -> bool:
        return bool(badge.text == "2")

    await async_wait_until(two, timeout=2, what="the header's critical count")

    warning = await feed.raise_alert("belt-3", rule="belt.speed", severity="warning")
    await user.should_see(marker=f"alert-{warning.id}", retries=30)
    with user.scope(marker=f"alert-{warning.id}"):
        await user.should_not_see(marker="new-badge")


async def test_filters(user: User, feed: HubFeed) -> None:
    crit = await feed.raise_alert("cnc-1", rule="a", severity="critical")
    warn = await feed.raise_alert("cnc-2", rule="b", severity="warning")
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/alerts?severity=warning")
    await user.should_see(marker=f"alert-{warn.id}", retries=30)
    await user.should_not_see(marker=f"alert-{crit.id}")
    await user.open("/alerts?device_id=cnc-1")
    await user.should_see(marker=f"alert-{crit.id}", retries=30)
    await user.should_not_see(marker=f"alert-{warn.id}")
    await user.open("/alerts?status=cleared")
    await user.should_see("No alerts match.", retries=30)
