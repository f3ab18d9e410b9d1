"""Signing in and out, sessions and roles, on the real app with NiceGUI's `user` fixture."""

from __future__ import annotations

import pytest
from nicegui import app, ui
from nicegui.testing.user import User

from tests.web.conftest import login
from tests.web.feed import HubFeed

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
    await feed.auth.delete_user("olga")
    await user.open("/")
    await user.should_see(marker="login-submit")
