"""The hub against PostgreSQL and Redis with TLS and passwords on, as across a real network:
`sslmode=verify-full` with `sslrootcert` in HUB_DATABASE_URL, `rediss://` with an ACL user in
HUB_REDIS_URL. Readings go through the worker into both; a server certificate from another CA
is refused with one line; no password appears in any output."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.storage.redis_keys import latest_key
from protocol.codec import encode
from tests.support.certs import CertAuthority
from tests.support.hub import HubWorkerProcess, position_group_at_end, produce
from tests.support.process import run_module
from tests.support.readings import make_reading
from tests.support.tls_stores import (
    TlsServer,
    postgres_url,
    redis_url,
    tls_postgres,
    tls_redis,
)
from tests.support.waiting import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with tls_postgres(tmp_path_factory.mktemp("tls-pg")) as server:
        yield server


@pytest.fixture(scope="module")
def tls_rd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    with tls_redis(tmp_path_factory.mktemp("tls-redis")) as server:
        yield server


def hub_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_module("hub.cli", *args, env={**os.environ, **env})


async def test_the_servers_refuse_clients_without_tls(tls_pg: TlsServer, tls_rd: TlsServer) -> None:
    """What the other tests rely on: these servers take TLS only."""
    plain = f"postgresql://iot:{tls_pg.password}@localhost:{tls_pg.port}/iot?sslmode=disable"
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain)
    client = Redis.from_url(
        f"redis://{tls_rd.user}:{tls_rd.password}@localhost:{tls_rd.port}/0", socket_timeout=5
    )
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()


async def test_the_worker_writes_through_verify_full_postgresql_and_rediss(
    kafka: str, tls_pg: TlsServer, tls_rd: TlsServer, tmp_path: Path
) -> None:
    database_url, live_url = postgres_url(tls_pg), redis_url(tls_rd)
    migrated = hub_cli("migrate", env={"HUB_DATABASE_URL": database_url})
    assert migrated.returncode == 0, migrated.stderr
    worker = HubWorkerProcess(tmp_path, kafka, live_url, database_url=database_url)
    await position_group_at_end(kafka, worker.group)
    device = f"tls-{uuid.uuid4().hex[:8]}"
    readings = [make_reading(device, 1_700_000_000_000 + i, {"value": float(i)}) for i in range(20)]
    conn = await asyncpg.connect(database_url)
    live = Redis.from_url(live_url)
    try:
        worker.start()
        await produce(kafka, [(device.encode(), encode(r)) for r in readings])

        async def everywhere() -> bool:
            count = await conn.fetchval("SELECT count(*) FROM readings WHERE device_id=$1", device)
            return bool(count == len(readings) and await live.exists(latest_key(device)))

        await async_wait_until(everywhere, 120, f"readings in both stores ({worker.log_path})")
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()
        await live.aclose()
        await worker.stop()
        worker.cleanup()
    for output in (worker.log(), migrated.stdout, migrated.stderr):
        assert tls_pg.password not in output
        assert tls_rd.password not in output
    assert f"HUB_DATABASE_URL=postgresql://iot:***@localhost:{tls_pg.port}/iot" in migrated.stdout
    assert not worker.errors(), worker.errors()


def test_a_postgresql_certificate_from_another_ca_is_one_line_without_the_password(
    tls_pg: TlsServer, tmp_path: Path
) -> None:
    stranger = CertAuthority(tmp_path, "not-the-servers-ca")
    result = hub_cli("migrate", env={"HUB_DATABASE_URL": postgres_url(tls_pg, ca=stranger.cert)})
    assert result.returncode == 1
    failures = [line for line in result.stderr.splitlines() if "event=migrate_failed" in line]
    assert len(failures) == 1, result.stderr
    assert "certificate verify failed" in failures[0]
    assert "Traceback" not in result.stderr
    assert tls_pg.password not in result.stdout + result.stderr


def test_a_postgresql_address_the_certificate_does_not_name_is_refused(
    tls_pg: TlsServer,
) -> None:
    # verify-full checks the name too: the certificate names localhost and 127.0.0.1 only.
    result = hub_cli("migrate", env={"HUB_DATABASE_URL": postgres_url(tls_pg, host="127.0.0.2")})
    assert result.returncode == 1
    assert "event=migrate_failed" in result.stderr
    assert "Traceback" not in result.stderr
