"""The audit log's values: what is recorded (`AuditEvent`), what is read back (`AuditEntry`)
and how a listing is filtered (`AuditFilter`). Pure; the `AuditTrail` stores
(`hub.storage.web_ports`) keep them.

Details never carry a secret: `AuditEvent` refuses a detail key that names one (password,
token, secret, hash...), at any depth, so a careless caller fails loudly in tests instead of
writing a password into a table nobody can clean.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from hub.storage.web_model import MAX_PAGE

__all__ = [
    "ACTIONS",
    "CLI_ACTOR",
    "Action",
    "Actor",
    "AuditEntry",
    "AuditEvent",
    "AuditFilter",
    "Outcome",
    "cli_actor",
]

Action = Literal[
    "auth.login",
    "auth.logout",
    "alert.acknowledge",
    "alert.clear",
    "alert.shelve",
    "alert.unshelve",
    "window.create",
    "window.update",
    "window.delete",
    "user.add",
    "user.update",
    "user.remove",
    "token.create",
    "token.revoke",
    "rules.edit",
    "rules.rollback",
    "notification.channel.create",
    "notification.channel.update",
    "notification.channel.delete",
    "notification.channel.test",
    "notification.route.create",
    "notification.route.update",
    "notification.route.delete",
    "metadata.edit",
    "metadata.delete",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
Outcome = Literal["success", "failure"]
CLI_ACTOR: Final = "cli"
MAX_ACTOR_CHARS: Final = 128
MAX_TEXT_CHARS: Final = 256
# A key that would hold a secret's value ("password", "new_password", "token"), not one about
# it ("password_changed", "token_name" is never used: the token's name is the target).
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token|hash|credentials?|api_key)$", re.I)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts and from where: a user or token principal's name with the client address, or
    the CLI with the operating-system user and host it ran as."""

    name: str
    client: str | None = None


def cli_actor(os_user: str, host: str | None = None) -> Actor:
    return Actor(name=CLI_ACTOR, client=f"{os_user}@{host or socket.gethostname()}")


def _check_details(value: Any, path: str = "details") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings, got {key!r}")
            if _SECRET_KEY.search(key):
                raise ValueError(f"{path}.{key}: the audit log never holds secrets")
            _check_details(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_details(item, path)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise ValueError(f"{path}: {type(value).__name__} is not JSON")


def _clip(text: str | None, limit: int) -> str | None:
    return None if text is None else text.replace("\x00", "")[:limit]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    actor: Actor
    action: Action
    outcome: Outcome = "success"
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.outcome not in ("success", "failure"):
            raise ValueError(f"unknown audit outcome {self.outcome!r}")
        _check_details(self.details)

    def row(self) -> tuple[str, str, str, str | None, str | None, dict[str, Any]]:
        """(actor, action, outcome, client, target, details), bounded and NUL-free (PostgreSQL
        text holds no NUL, and a name someone typed at the login page may contain anything)."""
        return (
            _clip(self.actor.name, MAX_ACTOR_CHARS) or "?",
            self.action,
            self.outcome,
            _clip(self.actor.client, MAX_TEXT_CHARS),
            _clip(self.target, MAX_TEXT_CHARS),
            self.details,
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int  # epoch ms
    actor: str
    action: str
    outcome: Outcome
    client: str | None
    target: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "client": self.client,
            "target": self.target,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: int | None = None  # epoch ms, inclusive
    until: int | None = None  # epoch ms, exclusive
    actor: str | None = None
    action: str | None = None  # an action, or a prefix ending in "." (e.g. "user.")
    outcome: Outcome | None = None
    limit: int = 100
    offset: int = 0

    def validate(self) -> AuditFilter:
        """Itself, or ValueError naming the field at fault."""
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE}, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset must be >= 0, got {self.offset}")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        if self.action is not None and not (
            self.action in ACTIONS
            or (self.action.endswith(".") and any(a.startswith(self.action) for a in ACTIONS))
        ):
            raise ValueError(
                f"unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}, "
                "or a prefix such as 'user.'"
            )
        if self.outcome is not None and self.outcome not in ("success", "failure"):
            raise ValueError(f"unknown outcome {self.outcome!r}; expected success or failure")
        return self


# -- what each account change records (every account store, in the change's own transaction) ----


def user_saved_event(
    actor: Actor,
    name: str,
    role: str,
    *,
    before_role: str | None,
    password_changed: bool,
    sessions_ended: int,
) -> AuditEvent:
    """``before_role`` None: the user is new."""
    if before_role is None:
        return AuditEvent(actor, "user.add", target=name, details={"role": role})
    details: dict[str, Any] = {
        "password_changed": password_changed,
        "sessions_ended": sessions_ended,
    }
    if before_role != role:
        details["role"] = {"from": before_role, "to": role}
    return AuditEvent(actor, "user.update", target=name, details=details)


def user_removed_event(actor: Actor, name: str, role: str, sessions_ended: int) -> AuditEvent:
    return AuditEvent(
        actor, "user.remove", target=name, details={"role": role, "sessions_ended": sessions_ended}
    )


def token_created_event(actor: Actor, name: str, role: str, expires_at: int | None) -> AuditEvent:
    return AuditEvent(
        actor, "token.create", target=name, details={"role": role, "expires_at": expires_at}
    )


def token_revoked_event(actor: Actor, name: str, role: str) -> AuditEvent:
    return AuditEvent(actor, "token.revoke", target=name, details={"role": role})
