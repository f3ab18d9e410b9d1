"""Sign-in pages whose tests look into the database itself (the audit rows of a throttled
sign-in, the session row logout deletes), on the real app and stores with NiceGUI's in-process
`user` fixture. The other sign-in tests run on the in-memory stores
(tests/unit/pages/test_login.py)."""

from __future__ import annotations

import asyncpg
import pytest
from nicegui import ui
from nicegui.testing.user import User

from hub.storage.postgres import Database
from tests.support.feed import HubFeed
from tests.support.pages import login, web_services

pytestmark = pytest.mark.integration


def pool_of(feed: HubFeed) -> asyncpg.Pool:
    assert isinstance(feed.database, Database)
    return feed.database._pool


class FrozenClock:
    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def throttle_on_a_frozen_clock(feed: HubFeed, free_failures: int, wait_s: float) -> FrozenClock:
    """Replace the app's throttle by one whose clock stands still (in-memory, so no other test
    shares its counts): the waits are then exact, whatever the machine's speed."""
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
    services.auth = AuthService(
        feed.auth, throttle, services.audit, services.auth.session_hours, services.metrics
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
    rows = await pool_of(feed).fetch(
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
    pool = pool_of(feed)
    assert await pool.fetchval("SELECT count(*) FROM web_sessions WHERE user_name = 'olga'") == 1
    user.find(marker="logout").click()
    await user.should_see(marker="login-submit", retries=30)
    assert await pool.fetchval("SELECT count(*) FROM web_sessions WHERE user_name = 'olga'") == 0
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE actor = 'olga' ORDER BY id DESC LIMIT 2"
    )
    assert [r["action"] for r in actions] == ["auth.logout", "auth.login"]
