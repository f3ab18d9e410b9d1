"""Users (argon2-hashed passwords), their dashboard sessions and API tokens (only a SHA-256 of
each session id and token is stored).

Hashing a password costs tens of milliseconds of CPU by design, so the async methods run it
in a worker thread: a login never stalls the event loop that serves every other session.

Every change (user added, changed or removed; token created or revoked) is written to the audit
log in the same transaction as the change itself, so neither exists without the other. A
password change or a removal ends the user's sessions in that transaction too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg
from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

from hub.storage.partitions import datetime_to_ms
from hub.web.audit import Actor, AuditEvent
from hub.web.audit_store import record_event
from hub.web.model import Principal, Role, check_role

__all__ = [
    "MAX_TOKEN_LIFETIME_S",
    "MIN_PASSWORD_CHARS",
    "TOKEN_PREFIX",
    "AuthStore",
    "PasswordCheck",
    "TokenCheck",
    "TokenInfo",
    "hash_password",
    "token_hash",
    "verify_password",
]

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "iot_"
TOKEN_PRINCIPAL_PREFIX: Final = "token:"
MIN_PASSWORD_CHARS: Final = 8
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# last_used_at is a hint for the operator, not an audit log: one write per token per minute at
# most, rather than one per API request.
_LAST_USED_RESOLUTION_S: Final = 60
MAX_TOKEN_LIFETIME_S: Final = 10 * 365 * 86_400  # beyond this, say "never" (no expiry)

_hasher = PasswordHash.recommended()  # argon2id with the library's current parameters
# Verified against when the user does not exist, so that a login costs the same either way and
# its timing does not tell which user names exist.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """False for a wrong password and for a hash this library cannot read."""
    try:
        return _hasher.verify(password, hashed)
    except (PwdlibError, ValueError):
        return False


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits: a plain SHA-256 is enough (no salt, no stretching), and it
    lets a request find its token by an index lookup."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name must be 1..64 of A-Z a-z 0-9 _ . @ -, got {name!r}")
    return name


PasswordFailure = Literal["unknown_user", "wrong_password"]


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A sign-in's outcome: the principal, or why not (for the audit log only; the person
    signing in is told the same thing either way)."""

    principal: Principal | None
    failure: PasswordFailure | None = None


@dataclass(frozen=True, slots=True)
class TokenCheck:
    principal: Principal | None
    expired_at: int | None = None  # epoch ms, when the token was refused for having expired


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    role: Role
    created_at: int  # epoch ms
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None

    def state(self, now_ms: int) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now_ms:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _ms(value: datetime | None) -> int | None:
    return None if value is None else datetime_to_ms(value)


class AuthStore:
    """Users, sessions and tokens in PostgreSQL (db/0002_web.sql, db/0003_security.sql), on the
    web process's pool (`hub.web.data.connect_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, name: str, password: str, role: Role, *, actor: Actor) -> bool:
        """Create the user, or replace the password and role of an existing one. A new
        password ends the user's sessions (it locks out whoever knew the old one); the same
        password again with another role keeps them, and the new role applies at once. True if
        the user was created."""
        check_name("user", name)
        check_role(role)
        if len(password) < MIN_PASSWORD_CHARS:
            raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._pool.acquire() as conn, conn.transaction():
            before = await conn.fetchrow(
                "SELECT role, password_hash FROM users WHERE name = $1 FOR UPDATE", name
            )
            await conn.execute(
                "INSERT INTO users (name, password_hash, role) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
                "role = EXCLUDED.role, updated_at = now()",
                name,
                hashed,
                role,
            )
            if before is None:
                event = AuditEvent(actor, "user.add", target=name, details={"role": role})
            else:
                same = await asyncio.to_thread(verify_password, password, before["password_hash"])
                ended = 0 if same else await self._end_user_sessions(conn, name)
                details: dict[str, Any] = {"password_changed": not same, "sessions_ended": ended}
                if before["role"] != role:
                    details["role"] = {"from": before["role"], "to": role}
                event = AuditEvent(actor, "user.update", target=name, details=details)
            await record_event(conn, event)
        return before is None

    async def check_password(self, name: str, password: str) -> PasswordCheck:
        """The user, if the password is right; otherwise why not. Unknown user and wrong
        password cost the same time, so timing does not tell which user names exist."""
        row = await self._pool.fetchrow(
            "SELECT password_hash, role FROM users WHERE name = $1", name
        )
        hashed = _DUMMY_HASH if row is None else row["password_hash"]
        ok = await asyncio.to_thread(verify_password, password, hashed)
        if row is None:
            return PasswordCheck(None, "unknown_user")
        if not ok:
            return PasswordCheck(None, "wrong_password")
        return PasswordCheck(Principal(name=name, role=check_role(row["role"])))

    async def authenticate(self, name: str, password: str) -> Principal | None:
        """The user, if the password is right; None otherwise (unknown user or wrong password,
        indistinguishable to the caller and, by timing, to whoever is trying)."""
        return (await self.check_password(name, password)).principal

    async def get_user(self, name: str) -> Principal | None:
        """The user as it stands now (a session may outlive a role change or a deletion)."""
        role = await self._pool.fetchval("SELECT role FROM users WHERE name = $1", name)
        return None if role is None else Principal(name=name, role=check_role(role))

    async def delete_user(self, name: str, *, actor: Actor) -> bool:
        """Remove the user; their sessions go with them (foreign key). False if no such user."""
        async with self._pool.acquire() as conn, conn.transaction():
            ended = await conn.fetchval(
                "SELECT count(*) FROM web_sessions WHERE user_name = $1", name
            )
            role = await conn.fetchval("DELETE FROM users WHERE name = $1 RETURNING role", name)
            if role is None:
                return False
            await record_event(
                conn,
                AuditEvent(
                    actor,
                    "user.remove",
                    target=name,
                    details={"role": role, "sessions_ended": ended},
                ),
            )
        return True

    async def list_users(self) -> list[Principal]:
        rows = await self._pool.fetch("SELECT name, role FROM users ORDER BY name")
        return [Principal(name=r["name"], role=check_role(r["role"])) for r in rows]

    # -- dashboard sessions --------------------------------------------------------------------

    async def create_session(self, principal: Principal, hours: float, client: str | None) -> str:
        """A new session id for the browser to hold; only its hash is stored. Expired sessions
        are swept here, so the table stays the size of the sessions in use."""
        session_id = secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
            await conn.execute(
                "INSERT INTO web_sessions (id_hash, user_name, client, expires_at) "
                "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                session_hash(session_id),
                principal.name,
                client,
                hours * 3600.0,
            )
        return session_id

    async def session_user(self, session_id: str) -> Principal | None:
        """The session's user as the database has them now (role included), or None if the
        session ended, expired, or its user was removed."""
        row = await self._pool.fetchrow(
            "SELECT u.name, u.role FROM web_sessions s JOIN users u ON u.name = s.user_name "
            "WHERE s.id_hash = $1 AND s.expires_at > now()",
            session_hash(session_id),
        )
        return None if row is None else Principal(name=row["name"], role=check_role(row["role"]))

    async def end_session(self, session_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM web_sessions WHERE id_hash = $1", session_hash(session_id)
        )
        return bool(status != "DELETE 0")

    async def end_user_sessions(self, name: str) -> int:
        async with self._pool.acquire() as conn:
            return await self._end_user_sessions(conn, name)

    @staticmethod
    async def _end_user_sessions(conn: asyncpg.Connection, name: str) -> int:
        status: str = await conn.execute("DELETE FROM web_sessions WHERE user_name = $1", name)
        return int(status.split()[-1])

    # -- API tokens ----------------------------------------------------------------------------

    async def create_token(
        self, name: str, role: Role, *, actor: Actor, expires_in_s: float | None = None
    ) -> str:
        """A new token named ``name``; the secret is returned once and only its hash is kept.
        It expires ``expires_in_s`` from now (None: never). A revoked or expired token's name
        can be reused; an active one's cannot (ValueError)."""
        check_name("token", name)
        check_role(role)
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_TOKEN_LIFETIME_S:
            raise ValueError(
                f"expiry must be within 1 s..{MAX_TOKEN_LIFETIME_S // 86_400} days, "
                f"got {expires_in_s:g} s"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._pool.acquire() as conn, conn.transaction():
            created = await conn.fetchrow(
                "INSERT INTO api_tokens AS t (name, token_hash, role, expires_at) "
                "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) "
                "ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, "
                "role = EXCLUDED.role, created_at = now(), last_used_at = NULL, "
                "revoked_at = NULL, expires_at = EXCLUDED.expires_at "
                "WHERE t.revoked_at IS NOT NULL OR t.expires_at <= now() "
                "RETURNING expires_at",
                name,
                token_hash(token),
                role,
                None if expires_in_s is None else float(expires_in_s),
            )
            if created is None:
                raise ValueError(f"an active token named {name!r} exists; revoke it first")
            details: dict[str, Any] = {
                "role": role,
                "expires_at": _ms(created["expires_at"]),
            }
            await record_event(
                conn, AuditEvent(actor, "token.create", target=name, details=details)
            )
        return token

    async def check_token(self, token: str) -> TokenCheck:
        """The token's principal ("token:<name>") if it exists, is not revoked and has not
        expired; an expired one says when it expired."""
        if not token.startswith(TOKEN_PREFIX):
            return TokenCheck(None)
        row = await self._pool.fetchrow(
            "SELECT name, role, expires_at, expires_at <= now() AS expired, "
            "last_used_at < now() - make_interval(secs => $2) "
            "OR last_used_at IS NULL AS stale FROM api_tokens "
            "WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash(token),
            _LAST_USED_RESOLUTION_S,
        )
        if row is None:
            return TokenCheck(None)
        if row["expired"]:
            return TokenCheck(None, expired_at=datetime_to_ms(row["expires_at"]))
        if row["stale"]:
            await self._pool.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE name = $1", row["name"]
            )
        principal = Principal(
            name=TOKEN_PRINCIPAL_PREFIX + row["name"], role=check_role(row["role"])
        )
        return TokenCheck(principal)

    async def verify_token(self, token: str) -> Principal | None:
        """The token's principal if it is valid now; None if unknown, revoked or expired."""
        return (await self.check_token(token)).principal

    async def revoke_token(self, name: str, *, actor: Actor) -> bool:
        """True if an active token of that name was revoked."""
        async with self._pool.acquire() as conn, conn.transaction():
            role = await conn.fetchval(
                "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL "
                "RETURNING role",
                name,
            )
            if role is None:
                return False
            await record_event(
                conn, AuditEvent(actor, "token.revoke", target=name, details={"role": role})
            )
        return True

    async def list_tokens(self) -> list[TokenInfo]:
        """Every token, revoked ones too (so that an audit can match names), by name."""
        rows = await self._pool.fetch(
            "SELECT name, role, created_at, expires_at, last_used_at, revoked_at "
            "FROM api_tokens ORDER BY name"
        )
        return [
            TokenInfo(
                name=r["name"],
                role=check_role(r["role"]),
                created_at=datetime_to_ms(r["created_at"]),
                expires_at=_ms(r["expires_at"]),
                last_used_at=_ms(r["last_used_at"]),
                revoked_at=_ms(r["revoked_at"]),
            )
            for r in rows
        ]
