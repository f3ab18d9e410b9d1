"""Who may connect to the embedded broker and what each client may publish and subscribe to.

The decisions are plain functions of the client's credentials (`connect_refusal`,
`topic_allowed`); an amqtt auth plugin and the broker's topic check (`TopicGate`) apply them,
count refusals and log them without letting one client flood the log. amqtt builds plugins itself
from a dotted path and a config dict, so the objects they need travel in that dict.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from edge_gateway.log_throttle import LogThrottle
from edge_gateway.mqtt_acl import AclRules

log = logging.getLogger("edge.broker")

RefusalKind = Literal["connect", "publish", "subscribe"]
OnRefused = Callable[[RefusalKind], None]

_HASHER = PasswordHash((Argon2Hasher(),))


@dataclass(frozen=True, slots=True)
class InternalCredential:
    """The gateway's own clients (bridge, in-process simulators) on its embedded broker: made
    fresh at every start, held in memory only, allowed every topic. Never shown or logged."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def generate(cls) -> InternalCredential:
        return cls(f"edge-internal-{secrets.token_hex(4)}", secrets.token_urlsafe(32))

    def matches(self, username: str | None, password: str | None) -> bool:
        if username is None or password is None:
            return False
        # Both compared in constant time; `&` rather than `and` so neither short-circuits.
        return hmac.compare_digest(username, self.username) & hmac.compare_digest(
            password, self.password
        )


def parse_password_file(text: str) -> dict[str, str]:
    """`user:argon2-hash` lines (`iot-edge passwd`), `#` comments; ValueError names the line."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise ValueError(f"line {number}: expected user:hash")
        if not Argon2Hasher.identify(hashed):
            raise ValueError(f"line {number}: the hash of {user!r} is not argon2")
        users[user] = hashed
    return users


@dataclass(frozen=True, slots=True)
class ConnectPolicy:
    internal: InternalCredential
    allow_anonymous: bool
    users: Mapping[str, str] | None  # None: no password file
    acl: AclRules | None
    reserved_client_ids: frozenset[str] = frozenset()


def connect_refusal(
    policy: ConnectPolicy,
    *,
    username: str | None,
    password: str | None,
    client_id: str,
    will_topic: str | None,
) -> tuple[str | None, bool]:
    """(why the connection is refused or None, whether the client counts as anonymous)."""
    if policy.internal.matches(username, password):
        return None, False
    if client_id in policy.reserved_client_ids:
        return "reserved_client_id", False  # would take the bridge's session over
    verified = False
    if username and policy.users is not None:
        hashed = policy.users.get(username)
        if hashed is None or not _HASHER.verify(password or "", hashed):
            return "bad_credentials", False
        verified = True
    elif not policy.allow_anonymous:
        return ("no_password_file" if username else "anonymous"), False
    anonymous = not verified  # a name nobody checked gets no one's ACL grants
    # The broker publishes the will for the client later: it needs the same write access.
    if (
        will_topic
        and policy.acl is not None
        and not policy.acl.allows_publish(None if anonymous else username, client_id, will_topic)
    ):
        return "will_topic_denied", anonymous
    return None, anonymous


def topic_allowed(
    acl: AclRules, username: str | None, client_id: str, topic: str, action: Action
) -> bool:
    if action == Action.PUBLISH:
        return acl.allows_publish(username, client_id, topic)
    if action == Action.SUBSCRIBE:
        return acl.allows_subscribe(username, client_id, topic)
    return acl.allows_receive(username, client_id, topic)


class RefusalLog:
    """Counts every refusal (through `on_refused`) and logs it, throttled per client."""

    def __init__(self, on_refused: OnRefused, clock: Callable[[], float] = time.monotonic) -> None:
        self._on_refused = on_refused
        self._clock = clock
        self._throttle = LogThrottle()

    def refused(self, kind: RefusalKind, client_id: str, **fields: object) -> None:
        self._on_refused(kind)
        held = self._throttle.admit(f"{kind}:{client_id}", self._clock())
        if held is not None:
            extra = {"client_id": client_id, **fields}
            if held:
                extra["suppressed"] = held
            log.warning(f"mqtt_{kind}_refused", extra=extra)


class EdgeAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped here
    """Internal credential, password file, anonymous access and the will topic's ACL."""

    @dataclass
    class Config:
        policy: Any = None  # ConnectPolicy
        refusals: Any = None  # RefusalLog

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._policy: ConnectPolicy = self.config.policy
        self._refusals: RefusalLog = self.config.refusals

    async def authenticate(self, *, session: Session) -> bool:
        reason, anonymous = connect_refusal(
            self._policy,
            username=session.username,
            password=session.password,
            client_id=session.client_id or "",
            will_topic=session.will_topic if session.will_flag else None,
        )
        # Re-set at each connect: a resumed session keeps the object of the previous one.
        session.is_anonymous = anonymous
        if reason is not None:
            self._refusals.refused(
                "connect", session.client_id or "", username=session.username or "-", reason=reason
            )
        return reason is None


class TopicGate:
    """Applies EDGE_MQTT_ACL_FILE to every publish, subscribe and delivery (broker._AclBroker
    says why this is not an amqtt topic plugin)."""

    def __init__(self, policy: ConnectPolicy, refusals: RefusalLog) -> None:
        self._policy = policy
        self._refusals = refusals

    def allows(self, session: Session, topic: str, action: Action) -> bool:
        if self._policy.acl is None:
            return True
        if self._policy.internal.matches(session.username, session.password):
            return True
        client_id = session.client_id or ""
        username = None if session.is_anonymous else session.username
        if topic_allowed(self._policy.acl, username, client_id, topic, action):
            return True
        if action != Action.RECEIVE:  # deliveries held back are the subscriber's business
            kind: RefusalKind = "publish" if action == Action.PUBLISH else "subscribe"
            self._refusals.refused(kind, client_id, username=username or "-", topic=topic)
        return False
