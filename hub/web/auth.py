"""Users (argon2-hashed passwords) and API tokens (only a SHA-256 of each is stored).

Hashing a password costs tens of milliseconds of CPU by design, so the async methods run it
in a worker thread: a login never stalls the event loop that serves every other session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from typing import Final

import asyncpg
from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

from hub.web.model import Principal, Role, check_role

__all__ = [
    "MIN_PASSWORD_CHARS",
    "TOKEN_PREFIX",
    "AuthStore",
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


class AuthStore:
    """Users and tokens in PostgreSQL (db/0002_web.sql), on the web process's pool
    (`hub.web.data.connect_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, name: str, password: str, role: Role) -> None:
        """Create the user, or replace the password and role of an existing one."""
        check_name("user", name)
        check_role(role)
        if len(password) < MIN_PASSWORD_CHARS:
            raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        hashed = await asyncio.to_thread(hash_password, password)
        await self._pool.execute(
            "INSERT INTO users (name, password_hash, role) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, "
            "role = EXCLUDED.role, updated_at = now()",
            name,
            hashed,
            role,
        )

    async def authenticate(self, name: str, password: str) -> Principal | None:
        """The user, if the password is right; None otherwise (unknown user or wrong password,
        indistinguishable to the caller and, by timing, to whoever is trying)."""
        row = await self._pool.fetchrow(
            "SELECT password_hash, role FROM users WHERE name = $1", name
        )
        hashed = _DUMMY_HASH if row is None else row["password_hash"]
        ok = await asyncio.to_thread(verify_password, password, hashed)
        if row is None or not ok:
            return None
        return Principal(name=name, role=check_role(row["role"]))

    async def get_user(self, name: str) -> Principal | None:
        """The user as it stands now (a session may outlive a role change or a deletion)."""
        role = await self._pool.fetchval("SELECT role FROM users WHERE name = $1", name)
        return None if role is None else Principal(name=name, role=check_role(role))

    async def delete_user(self, name: str) -> bool:
        status = await self._pool.execute("DELETE FROM users WHERE name = $1", name)
        return bool(status != "DELETE 0")

    async def list_users(self) -> list[Principal]:
        rows = await self._pool.fetch("SELECT name, role FROM users ORDER BY name")
        return [Principal(name=r["name"], role=check_role(r["role"])) for r in rows]

    # -- API tokens ----------------------------------------------------------------------------

    async def create_token(self, name: str, role: Role) -> str:
        """A new token named ``name``; the secret is returned once and only its hash is kept.
        A revoked token's name can be reused; an active one's cannot (ValueError)."""
        check_name("token", name)
        check_role(role)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = await self._pool.fetchval(
            "INSERT INTO api_tokens AS t (name, token_hash, role) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, "
            "role = EXCLUDED.role, created_at = now(), last_used_at = NULL, revoked_at = NULL "
            "WHERE t.revoked_at IS NOT NULL RETURNING name",
            name,
            token_hash(token),
            role,
        )
        if created is None:
            raise ValueError(f"an active token named {name!r} exists; revoke it first")
        return token

    async def verify_token(self, token: str) -> Principal | None:
        """The token's principal ("token:<name>") if it exists and is not revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        row = await self._pool.fetchrow(
            "SELECT name, role, last_used_at < now() - make_interval(secs => $2) "
            "OR last_used_at IS NULL AS stale FROM api_tokens "
            "WHERE token_hash = $1 AND revoked_at IS NULL",
            token_hash(token),
            _LAST_USED_RESOLUTION_S,
        )
        if row is None:
            return None
        if row["stale"]:
            await self._pool.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE name = $1", row["name"]
            )
        return Principal(name=TOKEN_PRINCIPAL_PREFIX + row["name"], role=check_role(row["role"]))

    async def revoke_token(self, name: str) -> bool:
        """True if an active token of that name was revoked."""
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
        )
        return bool(status != "UPDATE 0")
