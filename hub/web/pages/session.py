"""Who is logged in to this browser, for how long, and their preferences.

A session is a row of the accounts store (`Accounts.create_session`); this browser's
NiceGUI `app.storage.user` (signed with HUB_WEB_STORAGE_SECRET) holds its id. Every page load
and every action checks the row, so logout, a password change and the user's removal end the
session on every replica at once; open pages notice within `SESSION_CHECK_S`
(`hub.web.pages.layout`). Preferences that follow a person from browser to browser (dark
mode) live in `app.storage.general`, keyed by user name.
"""

from __future__ import annotations

import time
from typing import Any, Final
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, ui

from hub.web.model import Principal, check_role
from hub.web.services import AuthService

__all__ = [
    "client_address",
    "current_principal",
    "dark_preference",
    "end_session",
    "login_redirect",
    "safe_redirect",
    "session_id",
    "session_principal",
    "set_dark_preference",
    "sign_out",
    "start_session",
    "time_zone_name",
]

SESSION_KEY: Final = "session"
TZ_KEY: Final = "tz"
PREFS_KEY: Final = "web_prefs"


def start_session(
    principal: Principal, hours: float, session_id: str, *, now: float | None = None
) -> None:
    """Remember in this browser's storage the session `Accounts.create_session` made."""
    expires = (time.time() if now is None else now) + hours * 3600
    app.storage.user[SESSION_KEY] = {
        "id": session_id,
        "name": principal.name,
        "role": principal.role,
        "expires": expires,
    }


def end_session() -> None:
    app.storage.user.pop(SESSION_KEY, None)


def session_id() -> str | None:
    """This browser's session id (checked or not), for a page to re-check later."""
    return _session_id()


def _session_id() -> str | None:
    session = app.storage.user.get(SESSION_KEY)
    value = session.get("id") if isinstance(session, dict) else None
    return value if isinstance(value, str) else None


def session_principal(*, now: float | None = None) -> Principal | None:
    """The principal this browser logged in as, unless the session expired (then it is ended).
    A first, local check only: `current_principal` asks the database."""
    session = app.storage.user.get(SESSION_KEY)
    if not isinstance(session, dict):
        return None
    try:
        str(session["id"])  # a session from before server-side sessions: sign in again
        name = str(session["name"])
        role = check_role(str(session["role"]))
        expires = float(session["expires"])
    except (KeyError, TypeError, ValueError):
        end_session()
        return None
    if (time.time() if now is None else now) >= expires:
        end_session()
        return None
    return Principal(name=name, role=role)


async def current_principal(auth: AuthService) -> Principal | None:
    """The logged-in user as the database has them now: a session outlives neither logout
    elsewhere, nor a password change, nor the user's deletion, and a role change applies at
    once."""
    principal = session_principal()
    session_id = _session_id()
    if principal is None or session_id is None:
        return None
    now = await auth.session_user(session_id)
    if now is None:
        end_session()
        return None
    if now.role != principal.role:
        session = dict(app.storage.user[SESSION_KEY])
        session["role"] = now.role
        app.storage.user[SESSION_KEY] = session
    return now


async def sign_out(auth: AuthService, principal: Principal) -> None:
    """End this browser's session, in the database (every replica) and here."""
    session_id = _session_id()
    end_session()
    if session_id is not None:
        await auth.sign_out(session_id, principal, client_address())


def client_address() -> str | None:
    """The address of the browser this page serves (through a proxy listed in uvicorn's
    FORWARDED_ALLOW_IPS: the X-Forwarded-For address)."""
    try:
        return ui.context.client.ip or None
    except RuntimeError:  # no request (a page built outside one)
        return None


def safe_redirect(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil`, `https://...`, `/\\evil`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith("/login"):
        return "/"
    return target


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?redirect_to={quote(target, safe='')}", status_code=303)


def time_zone_name() -> str | None:
    name = app.storage.user.get(TZ_KEY)
    return name if isinstance(name, str) else None


def set_time_zone_name(name: str) -> None:
    app.storage.user[TZ_KEY] = name[:64]


def _prefs(name: str) -> dict[str, Any]:
    every = app.storage.general.get(PREFS_KEY)
    mine = every.get(name) if isinstance(every, dict) else None
    return dict(mine) if isinstance(mine, dict) else {}


def dark_preference(name: str) -> bool | None:
    """True, False, or None for the browser's own setting."""
    value = _prefs(name).get("dark")
    return value if isinstance(value, bool) else None


def set_dark_preference(name: str, dark: bool | None) -> None:
    every = app.storage.general.get(PREFS_KEY)
    every = dict(every) if isinstance(every, dict) else {}
    mine = _prefs(name)
    mine["dark"] = dark
    every[name] = mine
    app.storage.general[PREFS_KEY] = every
