"""Users' and tokens' credentials as the account stores keep them, and the rules every store
applies before it writes one: pure apart from the deliberate CPU cost of hashing a password.

Passwords are argon2id-hashed (`hash_password`); sessions and tokens carry 256 random bits and
only a SHA-256 of each is stored (`session_hash`, `token_hash`), so a request finds its row by
an index lookup and a copy of the table lets nobody in.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

from hub.storage.web_model import Principal, Role, check_role

__all__ = [
    "LAST_USED_RESOLUTION_S",
    "MAX_TOKEN_LIFETIME_S",
    "MIN_PASSWORD_CHARS",
    "TOKEN_PREFIX",
    "TOKEN_PRINCIPAL_PREFIX",
    "PasswordCheck",
    "PasswordFailure",
    "TokenCheck",
    "TokenInfo",
    "check_name",
    "check_new_token",
    "check_new_user",
    "dummy_hash",
    "hash_password",
    "new_session_id",
    "new_token",
    "session_hash",
    "token_hash",
    "token_principal",
    "verify_password",
]

TOKEN_PREFIX: Final = "iot_"
TOKEN_PRINCIPAL_PREFIX: Final = "token:"
MIN_PASSWORD_CHARS: Final = 8
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# last_used_at is a hint for the operator, not an audit log: one write per token per minute at
# most, rather than one per API request.
LAST_USED_RESOLUTION_S: Final = 60
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


def dummy_hash() -> str:
    """What an unknown user's password is checked against (see `_DUMMY_HASH`)."""
    return _DUMMY_HASH


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits: a plain SHA-256 is enough (no salt, no stretching), and it
    lets a request find its token by an index lookup."""
    return hashlib.sha256(token.encode()).hexdigest()


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_principal(name: str, role: str) -> Principal:
    return Principal(name=TOKEN_PRINCIPAL_PREFIX + name, role=check_role(role))


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name must be 1..64 of A-Z a-z 0-9 _ . @ -, got {name!r}")
    return name


def check_new_user(name: str, password: str, role: Role) -> None:
    """ValueError unless the user may be stored as given."""
    check_name("user", name)
    check_role(role)
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"password must have at least {MIN_PASSWORD_CHARS} characters")


def check_new_token(name: str, role: Role, expires_in_s: float | None) -> None:
    """ValueError unless a token may be created as asked."""
    check_name("token", name)
    check_role(role)
    if expires_in_s is not None and not 0 < expires_in_s <= MAX_TOKEN_LIFETIME_S:
        raise ValueError(
            f"expiry must be within 1 s..{MAX_TOKEN_LIFETIME_S // 86_400} days, "
            f"got {expires_in_s:g} s"
        )


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
