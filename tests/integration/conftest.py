"""PostgreSQL for the integration tests: the real local server, started by scripts/services, and
a throwaway database per test session (never the development database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from hub.settings import HUB_DLQ_TOPIC
from hub.storage.migrations import migrate
from hub.storage.postgres import Database
from protocol import topics
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.kafka import ensure_topics
from tests.support.services import run_services
from tests.support.waiting import async_wait_until


@dataclass(frozen=True)
class PostgresServer:
    """Where scripts/services runs PostgreSQL, and the application role (which has CREATEDB)."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls) -> PostgresServer:
        return cls(
            host=os.environ.get("PG_HOST", "127.0.0.1"),
            port=int(os.environ.get("PG_PORT", "5432")),
            user=os.environ.get("PG_USER", "iot"),
            password=os.environ.get("PG_PASSWORD", "iot"),
            database=os.environ.get("PG_DATABASE", "iot"),
        )

    def dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/"
            f"{database or self.database}"
        )

    def create_database(self, prefix: str = "iot_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._create(name))
        return name

    def drop_database(self, name: str) -> None:
        asyncio.run(self._drop(name))

    @contextlib.contextmanager
    def own_database(self, prefix: str = "iot_test", *, migrated: bool = True) -> Iterator[str]:
        """DSN of a database of its own (migrated unless asked not to), dropped afterwards."""
        name = self.create_database(prefix)
        try:
            dsn = self.dsn(name)
            if migrated:
                asyncio.run(migrate(dsn))
            yield dsn
        finally:
            self.drop_database(name)

    async def _create(self, name: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def _drop(self, name: str) -> None:
        # Not WITH (FORCE): that needs the right to signal every backend in the database, and
        # an autovacuum worker is not ours. Plain DROP DATABASE stops autovacuum by itself; our
        # own leftover connections we end first.
        conn = await asyncpg.connect(self.dsn())
        try:

            async def dropped() -> bool:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
                    name,
                )
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                except asyncpg.ObjectInUseError:
                    return False
                return True

            await async_wait_until(dropped, timeout=30, what=f"dropping database {name}")
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real local Redis 7, started by scripts/services if it is not running."""
    run_services("start", "redis")
    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    return f"redis://{host}:{os.environ.get('REDIS_PORT', '6379')}/0"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The real local PostgreSQL 15, started by scripts/services if it is not running."""
    run_services("start", "postgres")
    return PostgresServer.from_env()


@pytest.fixture(scope="session")
def postgres(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of this session's throwaway database, migrated to the current schema; dropped at the
    end of the session."""
    with postgres_server.own_database() as dsn:
        yield dsn


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of a migrated database of this test's own, dropped after the test: for a worker
    process that writes to it while the test reads."""
    with postgres_server.own_database("iot_test_hub") as dsn:
        yield dsn


@pytest.fixture
async def pg_fresh(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's `fresh_database`, to read what a worker process wrote."""
    conn = await asyncpg.connect(fresh_database)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def blank_database(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of an empty database of its own (no schema), dropped after the test."""
    with postgres_server.own_database("iot_test_blank", migrated=False) as dsn:
        yield dsn


@pytest.fixture
async def worker(
    tmp_path: Path, kafka: str, redis_url: str, blank_database: str
) -> AsyncIterator[HubWorkerProcess]:
    """A worker (not started) over an empty database of its own, at the end of every topic.
    A test module needing another worker defines its own `worker`."""
    await ensure_topics(kafka, [*topics.KAFKA_TOPICS, HUB_DLQ_TOPIC])
    process = HubWorkerProcess(tmp_path, kafka, redis_url, database_url=blank_database)
    await position_group_at_end(kafka, process.group)  # every topic the worker reads
    yield process
    process.cleanup()


@pytest.fixture
async def pg(postgres: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the session's database, emptied first: no rows and no readings
    partitions. For arranging and checking with SQL of the test's own."""
    conn = await asyncpg.connect(postgres)
    try:
        await reset_data(conn)
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def database(postgres: str, pg: asyncpg.Connection) -> AsyncIterator[Database]:
    """A `Database` on the session's database, emptied first (see `pg`)."""
    db = await Database.connect(postgres)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def pool(postgres: str, pg: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    """The web app's pool (`hub.storage.read_model.connect_pool`) on the session's database, emptied
    first (see `pg`), without users, tokens or sessions either."""
    from hub.storage.read_model import connect_pool  # the web app's dependencies only where used

    await pg.execute("TRUNCATE users, api_tokens, web_sessions")
    p = await connect_pool(postgres)
    yield p
    await p.close()


async def reset_data(conn: asyncpg.Connection) -> None:
    """Drop every day table of `readings` (attached or not) and empty the other tables."""
    tables = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'readings\\_p%' "
        "AND relnamespace = 'public'::regnamespace"
    )
    for row in tables:
        await conn.execute(f'DROP TABLE "{row["relname"]}"')
    await conn.execute(
        "TRUNCATE devices, readings_1m, readings_1h, readings_1d, alerts, notification_outbox, "
        "notification_deliveries, notification_attempts, notification_schedules, "
        "notification_groups, notification_channels, notification_routes RESTART IDENTITY"
    )
