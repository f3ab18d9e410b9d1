"""Signing in and out with a password: the throttle, the password check, the session and the
audit record, in that order, for the login page and for any other entry point that takes a
password. One log line and one audit row per attempt, never the password."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from hub.settings import HubSettings
from hub.web.audit import Actor, AuditEvent, Outcome
from hub.web.audit_store import AuditLog
from hub.web.auth import AuthStore, check_name
from hub.web.metrics import METRICS
from hub.web.model import Principal
from hub.web.throttle import ThrottlePolicy
from hub.web.throttle_store import LoginThrottle, ThrottleStore

__all__ = ["SignIn", "SignInResult", "build_throttle"]

log = logging.getLogger("hub.web.signin")

UNKNOWN_ACTOR: Final = "?"  # a name that cannot be a user's: never stored as typed


@dataclass(frozen=True, slots=True)
class SignInResult:
    principal: Principal | None
    session_id: str | None = None
    retry_after_s: int = 0  # > 0: refused by the throttle, try again after this many seconds

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


def build_throttle(settings: HubSettings, store: ThrottleStore) -> LoginThrottle:
    max_wait = settings.web_login_max_wait_s
    forget = max(3600.0, 2 * max_wait)
    return LoginThrottle(
        store,
        user_policy=ThrottlePolicy(
            free_failures=settings.web_login_free_failures,
            max_wait_s=max_wait,
            forget_after_s=forget,
        ),
        address_policy=ThrottlePolicy(
            free_failures=settings.web_login_free_failures_per_address,
            max_wait_s=max_wait,
            forget_after_s=forget,
        ),
    )


def _actor_name(name: str) -> str:
    """The name as the audit log records it: a well-formed user name as typed, anything else
    (people type their password into the name field) as "?"."""
    try:
        return check_name("user", name)
    except ValueError:
        return UNKNOWN_ACTOR


class SignIn:
    def __init__(
        self, auth: AuthStore, throttle: LoginThrottle, audit: AuditLog, session_hours: float
    ) -> None:
        self._auth = auth
        self._throttle = throttle
        self._audit = audit
        self._session_hours = session_hours

    async def sign_in(self, name: str, password: str, client: str | None) -> SignInResult:
        actor = Actor(_actor_name(name), client)
        decision = await self._throttle.begin(name, client)
        if not decision.allowed:
            # The first refusal of a wait is audited; the rest are logged and counted, and the
            # count goes into the next audited attempt: a flood cannot flood the table.
            await self._record(
                actor,
                "failure",
                {"reason": "throttled", "retry_after_s": decision.retry_after_s},
                audit=decision.refused_before == 0,
            )
            METRICS.login(ok=False)
            return SignInResult(None, retry_after_s=decision.retry_after_s)
        refused: dict[str, str | int] = {}
        if decision.refused_before > 0:
            refused["throttled_attempts_before"] = decision.refused_before
        check = await self._auth.check_password(name, password)
        if check.principal is None:
            reason = check.failure or "wrong_password"
            await self._record(actor, "failure", {"reason": reason, **refused})
            METRICS.login(ok=False)
            return SignInResult(None)
        await self._throttle.succeeded(name, client)
        session_id = await self._auth.create_session(check.principal, self._session_hours, client)
        await self._record(actor, "success", {"role": check.principal.role, **refused})
        METRICS.login(ok=True)
        return SignInResult(check.principal, session_id)

    async def sign_out(self, session_id: str, principal: Principal, client: str | None) -> None:
        ended = await self._auth.end_session(session_id)
        await self._audit.record(
            AuditEvent(Actor(principal.name, client), "auth.logout", details={"ended": ended})
        )
        log.info("logout", extra={"user": principal.name, "client": client or "-"})

    async def _record(
        self,
        actor: Actor,
        outcome: Outcome,
        details: dict[str, str | int],
        *,
        audit: bool = True,
    ) -> None:
        if audit:
            await self._audit.record(AuditEvent(actor, "auth.login", outcome, details=details))
        event = "login_ok" if outcome == "success" else "login_failed"
        level = logging.INFO if outcome == "success" else logging.WARNING
        log.log(level, event, extra={"user": actor.name, "client": actor.client or "-", **details})
