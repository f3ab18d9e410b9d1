"""`/login`: user name and password through `hub.web.services.AuthService` (throttled per user
and per address, audited); on success a session for HUB_WEB_SESSION_HOURS and on to where the
browser was going (a path on this site only). While throttled the page says how long to wait
and counts down, with the button disabled."""

from __future__ import annotations

import logging
import time
from typing import Final

from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.web.container import WebServices
from hub.web.pages import session
from hub.web.views.numbers import format_wait
from hub.web.views.times import zone

__all__ = ["register"]

log = logging.getLogger(__name__)

MAX_NAME_CHARS: Final = 64
MAX_PASSWORD_CHARS: Final = 1024
_TZ_JS: Final = "return Intl.DateTimeFormat().resolvedOptions().timeZone"


def register(services: WebServices) -> None:
    @ui.page("/login", title="Sign in · IoT Hub")
    async def login_page(redirect_to: str = "/") -> RedirectResponse | None:
        target = session.safe_redirect(redirect_to)
        if await session.current_principal(services.auth) is not None:
            return RedirectResponse(target, status_code=303)
        ui.dark_mode(None)
        ui.query("body").classes("bg-grey-2 dark:bg-[#121212]")
        LoginForm(services, target)
        ui.timer(0.1, _remember_time_zone, once=True)
        return None


class LoginForm:
    """The sign-in card: user name, password, the error line and the throttle's countdown."""

    def __init__(self, services: WebServices, target: str) -> None:
        self._services = services
        self._target = target
        self._wait_until = 0.0  # monotonic; the throttle's wait, counted down on the page
        with ui.card().classes("absolute-center w-[22rem] max-w-[92vw] p-6 gap-3"):
            ui.label("IoT Hub").classes("text-2xl font-semibold")
            ui.label("Sign in to the operator dashboard").classes("text-sm opacity-70")
            self.name = (
                ui.input("User name")
                .props(f"autofocus autocomplete=username maxlength={MAX_NAME_CHARS}")
                .classes("w-full")
                .mark("username")
                .props("data-testid=username")
            )
            self.password = (
                ui.input("Password", password=True, password_toggle_button=True)
                .props(f"autocomplete=current-password maxlength={MAX_PASSWORD_CHARS}")
                .classes("w-full")
                .mark("password")
                .props("data-testid=password")
            )
            self.error = (
                ui.label("")
                .classes("text-negative text-sm")
                .mark("login-error")
                .props("data-testid=login-error")
            )
            self.error.set_visibility(False)
            self.password.on("keydown.enter", self.submit)
            self.name.on("keydown.enter", lambda: self.password.run_method("focus"))
            self.button = (
                ui.button("Sign in", on_click=self.submit)
                .classes("w-full mt-2")
                .mark("login-submit")
                .props("data-testid=login-submit")
            )
            self.countdown = ui.timer(1.0, self.show_wait, active=False)

    def show_wait(self) -> None:
        left = int(self._wait_until - time.monotonic() + 0.999)
        if left <= 0:
            self.countdown.deactivate()
            self.error.text = "You can try again now."
            self.button.enable()
            return
        self.error.text = f"Too many failed sign-ins. Try again in {format_wait(left)}."

    async def submit(self) -> None:
        user = (self.name.value or "").strip()[:MAX_NAME_CHARS]
        secret = (self.password.value or "")[:MAX_PASSWORD_CHARS]
        if not user or not secret:
            self.error.text = "Enter a user name and a password."
            self.error.set_visibility(True)
            return
        if time.monotonic() < self._wait_until:
            return  # still counting down (the button is disabled; Enter is not)
        self.button.disable()
        try:
            auth = self._services.auth
            result = await auth.sign_in(user, secret, session.client_address())
        finally:
            self.button.enable()
        self.password.value = ""
        if result.throttled:
            self._wait_until = time.monotonic() + result.retry_after_s
            self.button.disable()
            self.error.set_visibility(True)
            self.show_wait()
            self.countdown.activate()
            return
        if result.principal is None or result.session_id is None:
            self.error.text = "Wrong user name or password."
            self.error.set_visibility(True)
            return
        session.start_session(result.principal, auth.session_hours, result.session_id)
        ui.navigate.to(self._target)


async def _remember_time_zone() -> None:
    # Charts and tables show the browser's local time: learn its zone once per login.
    await ui.context.client.connected()
    try:
        name = await ui.run_javascript(_TZ_JS, timeout=5)
    except TimeoutError:
        return  # times stay in UTC
    if isinstance(name, str) and zone(name).key == name:
        session.set_time_zone_name(name)
