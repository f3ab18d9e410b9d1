"""Signing in and out, sessions and roles, on the app and its in-memory stores with NiceGUI's
`user` fixture (tests/web/test_login_database.py: what the database holds afterwards)."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import app, ui
from nicegui.testing.user import User

from tests.support.feed import TEST_ACTOR, HubFeed
from tests.support.pages import login
from tests.support.waiting import async_wait_until


async def test_pages_redirect_to_login_and_back(user: User, feed: HubFeed) -> None:
    await feed.add_user("olga", "operator")
    await user.open("/alerts")
    await user.should_see(marker="login-submit")
    user.find(marker="username").type("olga")
    user.find(marker="password").type("correct horse battery")
    user.find(marker="login-submit").click()
    await user.should_see(marker="alert-list", retries=30)
    await user.should_see("olga")
    await user.should_see("operator")


async def test_wrong_password_is_refused(user: User, feed: HubFeed) -> None:
    await feed.add_user("olga", "operator")
    await login(user, "olga", "not the password")
    await user.should_see("Wrong user name or password.")
    await user.open("/")
    await user.should_see(marker="login-submit")


def dark_mode(user: User) -> bool | None:
    element = user.find(kind=ui.dark_mode).elements.pop()
    assert isinstance(element, ui.dark_mode)
    value: bool | None = element.value
    return value


async def test_dark_mode_is_remembered_per_user(user: User, feed: HubFeed) -> None:
    await feed.add_user("olga", "operator")
    await feed.add_user("vera", "viewer")
    await login(user, "olga")
    await user.should_see(marker="dark-toggle", retries=30)
    assert dark_mode(user) is None  # follows the system until chosen
    user.find(marker="dark-toggle").click()
    assert dark_mode(user) is True
    await user.open("/alerts")
    await user.should_see(marker="alert-list", retries=30)
    assert dark_mode(user) is True  # another page, the same choice

    user.find(marker="logout").click()
    await user.should_see(marker="login-submit", retries=30)
    await login(user, "vera")
    await user.should_see(marker="dark-toggle", retries=30)
    assert dark_mode(user) is None  # someone else's choice is theirs alone
    user.find(marker="logout").click()
    await user.should_see(marker="login-submit", retries=30)
    await login(user, "olga")
    await user.should_see(marker="dark-toggle", retries=30)
    assert dark_mode(user) is True


async def test_an_expired_session_and_a_deleted_user_sign_out(user: User, feed: HubFeed) -> None:
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    with user:
        session = dict(app.storage.user["session"])
        session["expires"] = 0  # long past
        app.storage.user["session"] = session
    await user.open("/")
    await user.should_see(marker="login-submit")

    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    await feed.auth.delete_user("olga", actor=TEST_ACTOR)
    await user.open("/")
    await user.should_see(marker="login-submit")


# -- throttling, sessions ended elsewhere, the audit page -----------------------------------------


@pytest.mark.parametrize("change", ["password", "removal"])
async def test_an_open_page_signs_out_when_the_password_changes_or_the_user_goes(
    user: User, feed: HubFeed, change: str
) -> None:
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    if change == "password":
        await feed.add_user("olga", "operator", password="a brand new password")
    else:
        await feed.auth.delete_user("olga", actor=TEST_ACTOR)
    # The open page notices within SESSION_CHECK_S (its timer asks the database).
    await user.should_see(marker="login-submit", retries=100)
    await user.open("/")
    await user.should_see(marker="login-submit")


async def test_the_audit_page_is_for_admins(user: User, feed: HubFeed) -> None:
    await feed.add_user("ada", "admin")
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    await user.should_not_see(marker="nav-audit")
    await user.open("/audit")
    await user.should_see(marker="audit-forbidden")
    await user.should_not_see(marker="audit-table")
    user.find(marker="logout").click()
    await user.should_see(marker="login-submit", retries=30)

    await login(user, "ada")
    await user.should_see(marker="nav-audit", retries=30)
    await user.open("/audit")
    await user.should_see(marker="audit-table", retries=30)
    table = user.find(marker="audit-table").elements.pop()
    assert isinstance(table, ui.table)

    async def rows_shown() -> list[dict[str, Any]]:
        return list(table.rows)

    await async_wait_until(rows_shown, timeout=10, what="the audit rows")
    rows = [(r["actor"], r["action"], r["outcome"]) for r in table.rows]
    assert ("ada", "auth.login", "success") in rows
    assert ("olga", "auth.logout", "success") in rows
    assert ("test-setup", "user.add", "success") in rows
    assert all(r["details"] is not None for r in table.rows)

    # Filtered to failures: ada's sign-in goes, and only failures remain.
    outcome = user.find(marker="audit-outcome").elements.pop()
    assert isinstance(outcome, ui.select)
    outcome.value = "failure"

    async def only_failures() -> bool:
        return all(r["outcome"] == "failure" for r in table.rows) and not any(
            r["actor"] == "ada" for r in table.rows
        )

    await async_wait_until(only_failures, timeout=10, what="the failures-only list")
