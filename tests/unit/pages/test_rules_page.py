"""The rules page on the app and its in-memory stores, with NiceGUI's in-process `user`: an
admin's edit refused next to the field, then saved as a version; the history and its diff;
read-only for everyone else."""

from __future__ import annotations

from nicegui import ElementFilter, ui
from nicegui.testing.user import User

from tests.support.feed import HubFeed
from tests.support.pages import login, web_services
from tests.support.waiting import async_wait_until

SLUG = "spindle_temp_c-threshold"


def label_text(user: User, marker: str) -> str:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.label)
    return str(element.text)


async def dialog_opened(user: User) -> None:
    async def opened() -> bool:
        with user:
            return any(d.value for d in ElementFilter(kind=ui.dialog, local_scope=False))

    await async_wait_until(opened, timeout=5, what="the dialog to open")


async def test_admin_edit_refused_by_field_then_saved(user: User, feed: HubFeed) -> None:
    await feed.add_user("ada", "admin")
    await login(user, "ada")
    await user.open("/rules")
    await user.should_see("Rules in force: version 0", retries=30)
    await user.should_see(marker=f"rule-{SLUG}")
    await user.should_see("warn above 75")

    user.find(marker=f"rule-edit-{SLUG}").click()
    await dialog_opened(user)
    user.find(marker="rule-field-warn_high").clear().type("95")
    user.find(marker="rule-save").click()

    async def refused() -> bool:
        return "must be below crit_high (85)" in label_text(user, "rule-error-warn_high")

    await async_wait_until(refused, 5, "the problem next to warn_high")
    services = web_services()
    assert await services.rules.history() == []

    user.find(marker="rule-field-warn_high").clear().type("70")
    user.find(marker="rule-comment").type("earlier warning")
    user.find(marker="rule-save").click()
    await user.should_see("Saved as version 1", retries=30)
    await user.should_see("Rules in force: version 1")
    await user.should_see("warn above 70")
    (version,) = await services.rules.history()
    assert (version.author, version.comment) == ("ada", "earlier warning")
    assert version.document["types"]["cnc_spindle"]["rules"]["spindle_temp_c.threshold"] == {
        "warn_high": 70
    }

    (table,) = user.find(marker="rules-history").elements
    assert isinstance(table, ui.table)
    assert [(r["version"], r["author"], r["changes"]) for r in table.rows] == [
        (1, "ada", "cnc_spindle spindle_temp_c.threshold: warn_high 75 -> 70")
    ]
    user.find(marker="diff-show").click()
    await user.should_see("cnc_spindle spindle_temp_c.threshold: warn_high 75 -> 70", retries=30)


async def test_a_viewer_reads_the_rules_but_cannot_edit(user: User, feed: HubFeed) -> None:
    await feed.add_user("vera", "viewer")
    await login(user, "vera")
    await user.open("/rules")
    await user.should_see(marker="rules-read-only", retries=30)
    await user.should_see("warn above 75")
    await user.should_not_see(marker=f"rule-edit-{SLUG}")
    await user.should_not_see(marker="rollback")
