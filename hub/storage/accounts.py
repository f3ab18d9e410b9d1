"""Users (argon2-hashed passwords), their dashboard sessions and API tokens in PostgreSQL
(db/0002_web.sql, db/0003_security.sql), on the web process's pool
(`hub.storage.read_model.connect_pool`): the `Accounts` port's real adapter. Only a SHA-256 of
each session id and token is stored (`hub.storage.credentials`).

Hashing a password costs tens of milliseconds of CPU by design, so the async methods run it
in a worker thread: a login never stalls the event loop that serves every other session.

Every change (user added, changed or removed; token created or revoked) is written to the audit
log in the same transaction as the change itself, so neither exists without the other. A
password change or a removal ends the user's sessions in that transaction too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg

from hub.storage.audit_log import record_event
from hub.storage.audit_model import (
    Actor,
    token_created_event,
    token_revoked_event,
    user_removed_event,
    user_saved_event,
)
from hub.storage.credentials import (
    LAST_USED_RESOLUTION_S,
    TOKEN_PREFIX,
    PasswordCheck,
    TokenCheck,
    TokenInfo,
    check_new_token,
    check_new_user,
    dummy_hash,
    hash_password,
    new_session_id,
    new_token,
    session_hash,
    token_hash,
    token_principal,
    verify_password,
)
from hub.storage.partitions import datetime_to_ms
from hub.storage.web_model import Principal, Role, check_role

__all__ = ["PostgresAccounts"]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else datetime_to_ms(value)


class PostgresAccounts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- users ---------------------------------------------------------------------------------

    async def add_user(self, name: str, password: str, role: Role, *, actor: Actor) -> bool:
        """Create the user, or replace the password and role of an existing one. A new
        password ends the user's sessions (it locks out whoever knew the old one); the same
        password again with another role keeps them, and the new role applies at once. True if
        the user was created."""
        check_new_user(name, password, role)
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
            same, ended = False, 0
            if before is not None:
                same = await asyncio.to_thread(verify_password, password, before["password_hash"])
                ended = 0 if same else await self._end_user_sessions(conn, name)
            event = user_saved_event(
                actor,
                name,
                role,
                before_role=None if before is None else before["role"],
                password_changed=not same,
                sessions_ended=ended,
            )
            await record_event(conn, event)
        return before is None

    async def check_password(self, name: str, password: str) -> PasswordCheck:
        """The user, if the password is right; otherwise why not. Unknown user and wrong
        password cost the same time, so timing does not tell which user names exist."""
        row = await self._pool.fetchrow(
            "SELECT password_hash, role FROM users WHERE name = $1", name
        )
        hashed = dummy_hash() if row is None else row["password_hash"]
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
            await record_event(conn, user_removed_event(actor, name, role, ended))
        return True

    async def list_users(self) -> list[Principal]:
        rows = await self._pool.fetch("SELECT name, role FROM users ORDER BY name")
        return [Principal(name=r["name"], role=check_role(r["role"])) for r in rows]

    # -- dashboard sessions --------------------------------------------------------------------

    async def create_session(self, principal: Principal, hours: float, client: str | None) -> str:
        """A new session id for the browser to hold; only its hash is stored. Expired sessions
        are swept here, so the table stays the size of the sessions in use."""
        session_id = new_session_id()
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
        check_new_token(name, role, expires_in_s)
        token = new_token()
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
            event = token_created_event(actor, name, role, _ms(created["expires_at"]))
            await record_event(conn, event)
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
            LAST_USED_RESOLUTION_S,
        )
        if row is None:
            return TokenCheck(None)
        if row["expired"]:
            return TokenCheck(None, expired_at=datetime_to_ms(row["expires_at"]))
        if row["stale"]:
            await self._pool.execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE name = $1", row["name"]
            )
        return TokenCheck(token_principal(row["name"], row["role"]))

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
            await record_event(conn, token_revoked_event(actor, name, role))
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
