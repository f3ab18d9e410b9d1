"""Sessions, token expiry, the audit log and the login throttle on the real PostgreSQL and
Redis: what logout, a password change and a removal do to sessions, that an expired token is
refused with its expiry, that every change is audited without a secret and that the audit log
refuses every change, and the throttle shared by two web replicas through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.settings import HubSettings
from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_log import PostgresAuditLog
from hub.storage.audit_model import Actor, AuditEvent, AuditFilter
from hub.storage.read_model import redis_client
from hub.storage.throttle_store import MemoryThrottleStore, RedisThrottleStore, ThrottleStore
from hub.web.metrics import WebMetrics
from hub.web.model import Principal
from hub.web.services import AuthService, build_throttle
from hub.web.throttle import ThrottlePolicy
from hub.web.throttle_store import LoginThrottle

pytestmark = pytest.mark.integration

ADMIN = Actor("root-admin", "10.1.2.3")
PASSWORD = "correct horse battery"
NEW_PASSWORD = "battery staple horse"


class Clock:
    def __init__(self, now: float = 2_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def audit_mark(pool: asyncpg.Pool) -> int:
    """The newest audit id before the test: the log cannot be emptied, so tests read past it."""
    return int(await pool.fetchval("SELECT coalesce(max(id), 0) FROM audit_log"))


async def audit_rows(pool: asyncpg.Pool, after: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT actor, action, outcome, client, target, details::text AS details "
        "FROM audit_log WHERE id > $1 ORDER BY id",
        after,
    )
    return rows


@pytest.fixture
async def throttle_prefix(redis: Redis) -> AsyncIterator[str]:
    prefix = f"iot:test-throttle:{uuid.uuid4().hex[:8]}:"
    yield prefix
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)


# -- sessions ------------------------------------------------------------------------------------


async def test_logout_ends_only_that_session(pool: asyncpg.Pool) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    olga = Principal("olga", "operator")
    laptop = await auth.create_session(olga, 12, "10.0.0.1")
    phone = await auth.create_session(olga, 12, "10.0.0.2")
    assert laptop != phone
    assert await auth.session_user(laptop) == olga
    stored = await pool.fetchval("SELECT string_agg(id_hash, ',') FROM web_sessions")
    assert laptop not in stored  # only the hash is kept
    assert await auth.end_session(laptop)
    assert await auth.session_user(laptop) is None
    assert await auth.session_user(phone) == olga
    assert not await auth.end_session(laptop)
    assert await auth.session_user("made-up") is None


async def test_a_password_change_ends_every_session_and_a_role_change_applies_at_once(
    pool: asyncpg.Pool, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    sessions = [await auth.create_session(Principal("olga", "operator"), 12, None) for _ in "ab"]
    await auth.add_user("olga", NEW_PASSWORD, "viewer", actor=ADMIN)
    for session_id in sessions:
        assert await auth.session_user(session_id) is None
    rows = await audit_rows(pool, audit_mark)
    assert [(r["action"], r["target"], r["actor"], r["client"]) for r in rows] == [
        ("user.add", "olga", "root-admin", "10.1.2.3"),
        ("user.update", "olga", "root-admin", "10.1.2.3"),
    ]
    assert '"sessions_ended": 2' in rows[1]["details"]
    assert '"from": "operator"' in rows[1]["details"]
    assert '"to": "viewer"' in rows[1]["details"]


async def test_the_same_password_with_a_new_role_keeps_the_sessions(
    pool: asyncpg.Pool, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    session_id = await auth.create_session(Principal("olga", "operator"), 12, None)
    await auth.add_user("olga", PASSWORD, "viewer", actor=ADMIN)
    assert await auth.session_user(session_id) == Principal("olga", "viewer")  # demoted at once
    rows = await audit_rows(pool, audit_mark)
    assert '"password_changed": false' in rows[1]["details"]
    assert '"sessions_ended": 0' in rows[1]["details"]


async def test_a_session_expires(pool: asyncpg.Pool) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    session_id = await auth.create_session(Principal("olga", "operator"), 12, None)
    await pool.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    assert await auth.session_user(session_id) is None


async def test_a_removed_user_stays_signed_out_even_if_added_again(
    pool: asyncpg.Pool, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    session_id = await auth.create_session(Principal("olga", "operator"), 12, None)
    assert await auth.delete_user("olga", actor=ADMIN)
    assert not await auth.delete_user("olga", actor=ADMIN)
    assert await auth.session_user(session_id) is None
    await auth.add_user("olga", PASSWORD, "admin", actor=ADMIN)
    assert await auth.session_user(session_id) is None
    actions = [(r["action"], r["details"]) for r in await audit_rows(pool, audit_mark)]
    assert actions[1] == ("user.remove", '{"role": "operator", "sessions_ended": 1}')
    assert [a for a, _ in actions] == ["user.add", "user.remove", "user.add"]


# -- tokens --------------------------------------------------------------------------------------


async def test_an_expired_token_is_refused_and_says_when(
    pool: asyncpg.Pool, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    token = await auth.create_token("ci", "viewer", actor=ADMIN, expires_in_s=30 * 86_400)
    check = await auth.check_token(token)
    assert check.principal == Principal("token:ci", "viewer")
    [info] = await auth.list_tokens()
    assert info.expires_at is not None
    assert info.state(info.created_at) == "active"

    await pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 minute'")
    check = await auth.check_token(token)
    assert check.principal is None
    assert check.expired_at is not None
    assert await auth.verify_token(token) is None
    [info] = await auth.list_tokens()
    assert info.expires_at is not None
    assert info.state(info.expires_at) == "expired"

    again = await auth.create_token("ci", "admin", actor=ADMIN)  # an expired name can be reused
    assert await auth.verify_token(again) == Principal("token:ci", "admin")
    assert await auth.verify_token(token) is None
    [info] = await auth.list_tokens()
    assert info.expires_at is None

    rows = await audit_rows(pool, audit_mark)
    assert [r["action"] for r in rows] == ["token.create", "token.create"]
    for row in rows:
        assert token not in row["details"]
        assert again not in row["details"]


@pytest.mark.parametrize("expires_in_s", [0, -5, 11 * 365 * 86_400])
async def test_a_bad_expiry_is_refused(pool: asyncpg.Pool, expires_in_s: float) -> None:
    with pytest.raises(ValueError, match="expiry must be within"):
        await PostgresAccounts(pool).create_token(
            "ci", "viewer", actor=ADMIN, expires_in_s=expires_in_s
        )


# -- the audit log ---------------------------------------------------------------------------


async def test_every_change_is_audited_without_a_secret(
    pool: asyncpg.Pool, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    cli = Actor("cli", "root@hub-1")
    await auth.add_user("olga", PASSWORD, "operator", actor=cli)
    await auth.add_user("olga", NEW_PASSWORD, "operator", actor=cli)
    token = await auth.create_token("grafana", "viewer", actor=cli, expires_in_s=3600)
    assert await auth.revoke_token("grafana", actor=cli)
    assert not await auth.revoke_token("grafana", actor=cli)  # nothing changed: no record
    await auth.delete_user("olga", actor=cli)
    rows = await audit_rows(pool, audit_mark)
    assert [(r["action"], r["target"], r["outcome"]) for r in rows] == [
        ("user.add", "olga", "success"),
        ("user.update", "olga", "success"),
        ("token.create", "grafana", "success"),
        ("token.revoke", "grafana", "success"),
        ("user.remove", "olga", "success"),
    ]
    assert {(r["actor"], r["client"]) for r in rows} == {("cli", "root@hub-1")}
    everything = await pool.fetchval("SELECT string_agg(audit_log::text, '\n') FROM audit_log")
    for secret in (PASSWORD, NEW_PASSWORD, token, token[4:]):
        assert secret not in everything


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_audit_log_refuses_every_change(pool: asyncpg.Pool, statement: str) -> None:
    await PostgresAuditLog(pool).record(AuditEvent(ADMIN, "auth.logout"))
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute(statement)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before


async def test_audit_entries_filter_and_page(pool: asyncpg.Pool, audit_mark: int) -> None:
    auth = PostgresAccounts(pool)
    tag = uuid.uuid4().hex[:6]
    actor = Actor(f"admin-{tag}", "10.9.9.9")
    for i in range(5):
        await auth.add_user(f"u{i}-{tag}", PASSWORD, "viewer", actor=actor)
    await auth.create_token(f"t-{tag}", "viewer", actor=actor)
    log = PostgresAuditLog(pool)
    mine = await log.entries(AuditFilter(actor=actor.name, limit=4))
    assert mine.total == 6
    assert len(mine.items) == 4
    assert mine.items[0].action == "token.create"  # newest first
    rest = await log.entries(AuditFilter(actor=actor.name, limit=4, offset=4))
    assert [e.target for e in rest.items] == [f"u1-{tag}", f"u0-{tag}"]
    users = await log.entries(AuditFilter(actor=actor.name, action="user."))
    assert users.total == 5
    tokens = await log.entries(AuditFilter(actor=actor.name, action="token.create"))
    assert [e.target for e in tokens.items] == [f"t-{tag}"]
    newest = mine.items[0].at
    assert (await log.entries(AuditFilter(actor=actor.name, since=newest + 1))).total == 0
    assert (await log.entries(AuditFilter(actor=actor.name, until=newest + 1))).total == 6
    assert (await log.entries(AuditFilter(actor=actor.name, outcome="failure"))).total == 0


# -- signing in ----------------------------------------------------------------------------------


async def test_sign_in_audits_both_outcomes_with_the_reason(
    pool: asyncpg.Pool, redis_url: str, throttle_prefix: str, audit_mark: int
) -> None:
    auth = PostgresAccounts(pool)
    await auth.add_user("olga", PASSWORD, "operator", actor=ADMIN)
    redis = redis_client(redis_url)
    try:
        throttle = build_throttle(HubSettings(), RedisThrottleStore(redis, throttle_prefix))
        signin = AuthService(auth, throttle, PostgresAuditLog(pool), 1, WebMetrics())
        wrong = await signin.sign_in("olga", "not the password", "10.0.0.7")
        unknown = await signin.sign_in("nobody", PASSWORD, "10.0.0.7")
        typed_password = await signin.sign_in(PASSWORD, PASSWORD, "10.0.0.7")
        ok = await signin.sign_in("olga", PASSWORD, "10.0.0.7")
    finally:
        await redis.aclose()
    assert (wrong.principal, unknown.principal, typed_password.principal) == (None, None, None)
    assert ok.principal == Principal("olga", "operator")
    assert ok.session_id is not None
    assert await auth.session_user(ok.session_id) == Principal("olga", "operator")
    rows = await audit_rows(pool, audit_mark)
    logins = [(r["actor"], r["outcome"], r["client"], r["details"]) for r in rows[1:]]
    assert logins == [
        ("olga", "failure", "10.0.0.7", '{"reason": "wrong_password"}'),
        ("nobody", "failure", "10.0.0.7", '{"reason": "unknown_user"}'),
        # A name no user can have (a password typed into the name field) is not recorded.
        ("?", "failure", "10.0.0.7", '{"reason": "unknown_user"}'),
        ("olga", "success", "10.0.0.7", '{"role": "operator"}'),
    ]
    everything = await pool.fetchval("SELECT string_agg(audit_log::text, '\n') FROM audit_log")
    assert PASSWORD not in everything


# -- the throttle on both stores, and shared between replicas ----------------------------------

USER_POLICY = ThrottlePolicy(free_failures=3, max_wait_s=60.0, forget_after_s=600.0)
ADDRESS_POLICY = ThrottlePolicy(free_failures=6, max_wait_s=60.0, forget_after_s=600.0)


@pytest.fixture(params=["memory", "redis"])
async def store_factory(
    request: pytest.FixtureRequest, redis_url: str, throttle_prefix: str
) -> AsyncIterator[Callable[[Clock], ThrottleStore]]:
    """The same tests against both adapters of the throttle's store."""
    if request.param == "memory":
        shared: dict[str, MemoryThrottleStore] = {}

        def memory(clock: Clock) -> ThrottleStore:
            return shared.setdefault("store", MemoryThrottleStore(clock))

        yield memory
        return
    redis = redis_client(redis_url)

    def real(clock: Clock) -> ThrottleStore:
        return RedisThrottleStore(redis, throttle_prefix)

    yield real
    await redis.aclose()


def make_throttle(store: ThrottleStore, clock: Clock) -> LoginThrottle:
    return LoginThrottle(store, user_policy=USER_POLICY, address_policy=ADDRESS_POLICY, clock=clock)


async def test_the_throttle_waits_exponentially_on_either_store(
    store_factory: Callable[[Clock], ThrottleStore],
) -> None:
    clock = Clock()
    throttle = make_throttle(store_factory(clock), clock)
    for _ in range(4):
        assert (await throttle.begin("olga", "10.0.0.1")).allowed
    assert (await throttle.begin("olga", "10.0.0.1")).retry_after_s == 1
    assert (await throttle.begin("olga", "10.0.0.1")).refused_before == 1
    clock.now += 1
    let_through = await throttle.begin("olga", "10.0.0.1")
    assert (let_through.allowed, let_through.refused_before) == (True, 2)
    assert (await throttle.begin("Olga", "10.0.0.3")).retry_after_s == 2
    await throttle.succeeded("olga", "10.0.0.1")
    assert (await throttle.begin("olga", "10.0.0.1")).allowed


async def test_two_replicas_share_one_budget_through_redis(
    redis_url: str, throttle_prefix: str
) -> None:
    clock = Clock()
    clients = [redis_client(redis_url), redis_client(redis_url)]
    try:
        replicas = [make_throttle(RedisThrottleStore(c, throttle_prefix), clock) for c in clients]
        allowed = [(await replicas[i % 2].begin("olga", f"10.0.0.{i}")).allowed for i in range(8)]
    finally:
        for c in clients:
            await c.aclose()
    # 3 free failures and the first that waits nothing; then the wait, whichever replica.
    assert allowed == [True, True, True, True, False, False, False, False]


async def test_concurrent_attempts_through_redis_are_each_counted(
    redis_url: str, throttle_prefix: str
) -> None:
    clock = Clock()
    clients = [redis_client(redis_url) for _ in range(4)]
    try:
        replicas = [make_throttle(RedisThrottleStore(c, throttle_prefix), clock) for c in clients]
        decisions = await asyncio.gather(*(replicas[i % 4].begin("olga", None) for i in range(24)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(d.allowed for d in decisions) == 4
