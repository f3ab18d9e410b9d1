"""Signing in and out, sessions and roles, on the real app with NiceGUI's `user` fixture."""

from __future__ import annotations

from typing import Any

import pytest
from nicegui import app, ui
from nicegui.testing.user import User

from tests.support.waiting import async_wait_until
from tests.web.conftest import login, web_services
from tests.web.feed import TEST_ACTOR, HubFeed

pytestmark = pytest.mark.integration


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


class FrozenClock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def throttle_on_a_frozen_clock(feed: HubFeed, free_failures: int, wait_s: float) -> FrozenClock:
    """Replace the app's throttle by one whose clock stands still (in-memory, so no other test
    shares its counts): the waits are then exact, whatever the machine's speed."""
    from hub.storage.accounts import PostgresAccounts
    from hub.storage.throttle_store import MemoryThrottleStore
    from hub.web.services import AuthService
    from hub.web.throttle import ThrottlePolicy
    from hub.web.throttle_store import LoginThrottle

    clock = FrozenClock()
    policy = ThrottlePolicy(
        free_failures=free_failures, base_wait_s=wait_s, max_wait_s=wait_s * 8, forget_after_s=3600
    )
    throttle = LoginThrottle(
        MemoryThrottleStore(clock), user_policy=policy, address_policy=policy, clock=clock
    )
    services = web_services()
    accounts = PostgresAccounts(feed.database._pool)
    services.auth = AuthService(
        accounts, throttle, services.audit, services.auth.session_hours, services.metrics
    )
    return clock


async def test_repeated_failures_are_throttled_and_the_wait_is_shown(
    user: User, feed: HubFeed
) -> None:
    await feed.add_user("olga", "operator")
    clock = throttle_on_a_frozen_clock(feed, free_failures=2, wait_s=30.0)
    for _ in range(3):  # two free failures, and a third that had nothing to wait for
        await login(user, "olga", "not the password")
        await user.should_see("Wrong user name or password.")
    await login(user, "olga", "not the password")
    await user.should_see("Too many failed sign-ins. Try again in")
    submit = user.find(marker="login-submit").elements.pop()
    assert isinstance(submit, ui.button)
    assert not submit.enabled

    # The right password is refused too while the wait lasts: it is not even checked.
    await login(user, "olga")
    await user.should_see("Too many failed sign-ins. Try again in")
    clock.now += 30
    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    await user.should_see("0 devices", retries=30)  # the page's first reads are done

    # The first refusal of the wait is audited, the second only counted; the sign-in that
    # got through says how many were refused before it.
    rows = await feed.database._pool.fetch(
        "SELECT outcome, details->>'reason' AS reason, details->>'retry_after_s' AS wait, "
        "details->>'throttled_attempts_before' AS refused FROM audit_log "
        "WHERE action = 'auth.login' AND actor = 'olga' ORDER BY id DESC LIMIT 5"
    )
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("success", None),
        ("failure", "throttled"),
        ("failure", "wrong_password"),
        ("failure", "wrong_password"),
        ("failure", "wrong_password"),
    ]
    assert rows[0]["refused"] == "2"
    assert rows[1]["wait"] == "30"  # the frozen clock: exactly 30 s


async def test_logout_ends_the_session_in_the_database(user: User, feed: HubFeed) -> None:
    await feed.add_user("olga", "operator")
    await login(user, "olga")
    await user.should_see(marker="device-list", retries=30)
    pool = feed.database._pool
    assert await pool.fetchval("SELECT count(*) FROM web_sessions WHERE user_name = 'olga'") == 1
    user.find(marker="logout").click()
    await user.should_see(marker="login-submit", retries=30)
    assert await pool.fetchval("SELECT count(*) FROM web_sessions WHERE user_name = 'olga'") == 0
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE actor = 'olga' ORDER BY id DESC LIMIT 2"
    )
    assert [r["action"] for r in actions] == ["auth.logout", "auth.login"]


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
