"""The web layer's services over the storage ports (`hub.storage.web_ports`), shared by the pages
and the API; each is given its stores and metrics when the app is built (`hub.web.server`).

* `AlertService`: who may acknowledge or clear an alert, the comment's bounds, the log line, the
  audit record and the live event of each action.
* `AuthService`: signing in and out with a password (the throttle, the password check, the
  session and the audit record, in that order: one log line and one audit row per attempt,
  never the password), the session behind a page, and the token behind an API request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from hub.settings import HubSettings
from hub.storage.alert_events import alert_event, encode_event
from hub.storage.audit_model import Actor, AuditEvent, Outcome
from hub.storage.credentials import TokenCheck, check_name
from hub.storage.web_ports import Accounts, AlertEvents, AlertWrites, AuditTrail, ThrottleStore
from hub.web.metrics import WebMetrics
from hub.web.model import AlertRow, Principal, can_acknowledge
from hub.web.throttle import ThrottlePolicy
from hub.web.throttle_store import LoginThrottle

__all__ = [
    "MAX_COMMENT_CHARS",
    "AlertService",
    "AuthService",
    "SignInResult",
    "build_throttle",
]

log = logging.getLogger("hub.web.signin")
# The name the alert actions' log lines have always carried (they were in hub/web/data.py).
alert_log = logging.getLogger("hub.web.data")

MAX_COMMENT_CHARS: Final = 1000
UNKNOWN_ACTOR: Final = "?"  # a name that cannot be a user's: never stored as typed


# -- alerts ------------------------------------------------------------------------------------


class AlertService:
    def __init__(self, writes: AlertWrites, events: AlertEvents, audit: AuditTrail) -> None:
        self._writes = writes
        self._events = events
        self._audit = audit

    @staticmethod
    def check_comment(comment: str | None) -> str | None:
        """The comment stripped (None if empty); ValueError if too long."""
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment must be at most {MAX_COMMENT_CHARS} characters")
        if comment is not None and "\x00" in comment:
            raise ValueError("comment must not contain NUL characters")
        return comment

    async def acknowledge(
        self, alert_id: int, by: Principal, comment: str | None, *, client: str | None = None
    ) -> AlertRow | None:
        """Acknowledge as ``by`` (operator or admin, else PermissionError), with an optional
        comment (at most MAX_COMMENT_CHARS); None if no such alert. Published live and audited
        (with ``client``, the address the request came from)."""
        _require_acknowledge(by)
        comment = self.check_comment(comment)
        row = await self._writes.acknowledge_alert(alert_id, by.name, comment)
        if row is not None:
            alert_log.info("alert_acknowledged", extra=_alert_fields(row, by))
            details = {**_alert_details(row), "comment": comment}
            await self._audit.record(
                AuditEvent(
                    Actor(by.name, client), "alert.acknowledge", target=str(row.id), details=details
                )
            )
            await self._publish("acknowledged", row)
        return row

    async def clear(
        self, alert_id: int, by: Principal, *, client: str | None = None
    ) -> AlertRow | None:
        """Clear an active alert as ``by`` (operator or admin, else PermissionError); an alert
        already cleared is returned unchanged and not published again. None if no such alert.
        Audited, an attempt on an alert already cleared too."""
        _require_acknowledge(by)
        before = await self._writes.get_alert(alert_id)
        if before is None:
            return None
        row = await self._writes.clear_alert(alert_id, by.name)
        if row is not None:
            details = {**_alert_details(row), "was": before.state}
            await self._audit.record(
                AuditEvent(
                    Actor(by.name, client), "alert.clear", target=str(row.id), details=details
                )
            )
        if row is not None and before.state == "active":
            alert_log.info("alert_cleared", extra=_alert_fields(row, by))
            await self._publish("cleared", row)
        return row

    async def _publish(self, kind: str, row: AlertRow) -> None:
        """The same event the worker publishes (`hub.storage.alert_events.alert_event`)."""
        await self._events.publish_alert(encode_event(alert_event(kind, row)))


def _require_acknowledge(by: Principal) -> None:
    if not can_acknowledge(by.role):
        raise PermissionError(f"{by.name} ({by.role}) may not acknowledge or clear alerts")


def _alert_fields(row: AlertRow, by: Principal) -> dict[str, object]:
    return {"alert_id": row.id, "device_id": row.device_id, "rule": row.rule, "by": by.name}


def _alert_details(row: AlertRow) -> dict[str, str | int | None]:
    return {"device_id": row.device_id, "gateway_id": row.gateway_id, "rule": row.rule}


# -- signing in, sessions, tokens ----------------------------------------------------------------


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


class AuthService:
    def __init__(
        self,
        accounts: Accounts,
        throttle: LoginThrottle,
        audit: AuditTrail,
        session_hours: float,
        metrics: WebMetrics,
    ) -> None:
        self._accounts = accounts
        self._throttle = throttle
        self._audit = audit
        self._metrics = metrics
        self.session_hours = session_hours

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
            self._metrics.login(ok=False)
            return SignInResult(None, retry_after_s=decision.retry_after_s)
        refused: dict[str, str | int] = {}
        if decision.refused_before > 0:
            refused["throttled_attempts_before"] = decision.refused_before
        check = await self._accounts.check_password(name, password)
        if check.principal is None:
            reason = check.failure or "wrong_password"
            await self._record(actor, "failure", {"reason": reason, **refused})
            self._metrics.login(ok=False)
            return SignInResult(None)
        await self._throttle.succeeded(name, client)
        session_id = await self._accounts.create_session(
            check.principal, self.session_hours, client
        )
        await self._record(actor, "success", {"role": check.principal.role, **refused})
        self._metrics.login(ok=True)
        return SignInResult(check.principal, session_id)

    async def sign_out(self, session_id: str, principal: Principal, client: str | None) -> None:
        ended = await self._accounts.end_session(session_id)
        await self._audit.record(
            AuditEvent(Actor(principal.name, client), "auth.logout", details={"ended": ended})
        )
        log.info("logout", extra={"user": principal.name, "client": client or "-"})

    async def session_user(self, session_id: str) -> Principal | None:
        """The session's user as they are now; None once it ended, expired or they are gone."""
        return await self._accounts.session_user(session_id)

    async def check_token(self, token: str) -> TokenCheck:
        """An API request's bearer token: its principal, or why not."""
        return await self._accounts.check_token(token)

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
