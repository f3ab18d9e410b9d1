"""PostgreSQL and Redis as production runs them across a network: TLS on with certificates the
test makes, passwords on, and clients without TLS refused. Each is a server of the test's own
(own port, own state), started and stopped by the test session: PostgreSQL through
scripts/services (PG_TLS_DIR), Redis as a redis-server process with a generated configuration
and an ACL user instead of the default one."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.certs import CertAuthority
from tests.support.process import free_port
from tests.support.services import ROOT, run_services
from tests.support.waiting import wait_until

HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TlsServer:
    port: int
    user: str
    password: str
    ca: Path  # the CA that signed the server's certificate


@contextmanager
def tls_postgres(directory: Path) -> Iterator[TlsServer]:
    """PostgreSQL 15 with `ssl = on` and `hostnossl ... reject`; role and database `iot`."""
    ca = CertAuthority(directory / "ca", "pg-test-ca")
    issued = ca.issue("postgres-server", HOSTS)
    tls = directory / "server-tls"
    tls.mkdir()
    shutil.copy(issued.cert, tls / "server.crt")
    shutil.copy(issued.key, tls / "server.key")
    # The server's OS user must reach its data directory: pytest's tmp dirs are private.
    state = ROOT / ".local" / "tls-postgres"
    shutil.rmtree(state, ignore_errors=True)
    password = secrets.token_urlsafe(16)
    port = free_port()
    env = {
        "IOT_STATE_DIR": str(state),
        "PG_PORT": str(port),
        "PG_PASSWORD": password,
        "PG_TLS_DIR": str(tls),
    }
    run_services("start", "postgres", env=env)
    try:
        yield TlsServer(port, "iot", password, ca.cert)
    finally:
        run_services("stop", "postgres", env=env)
        shutil.rmtree(state, ignore_errors=True)


def postgres_url(server: TlsServer, host: str = "localhost", *, ca: Path | None = None) -> str:
    root = ca or server.ca
    return (
        f"postgresql://{server.user}:{quote(server.password)}@{host}:{server.port}/iot"
        f"?sslmode=verify-full&sslrootcert={root}"
    )


@contextmanager
def tls_redis(directory: Path) -> Iterator[TlsServer]:
    """redis-server on a TLS port only, the default user off, one ACL user with a password."""
    ca = CertAuthority(directory / "ca", "redis-test-ca")
    issued = ca.issue("redis-server", HOSTS)
    port, password = free_port(), secrets.token_urlsafe(16)
    data = directory / "data"
    data.mkdir()
    conf = directory / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {issued.cert}",
                f"tls-key-file {issued.key}",
                f"tls-ca-cert-file {ca.cert}",
                "tls-auth-clients no",  # clients prove themselves by password, not certificate
                "user default off",
                f"user iot-hub on >{password} ~* &* +@all",
                'save ""',
                "appendonly no",
                f"dir {data}",
                "",
            ]
        )
    )
    log = (directory / "redis.log").open("ab")
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    server = TlsServer(port, "iot-hub", password, ca.cert)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited {proc.returncode}: see {log.name}")
            client = redis.Redis.from_url(redis_url(server))
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_until(answers, 30, "the TLS Redis answering", 0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def redis_url(server: TlsServer, host: str = "localhost", *, ca: Path | None = None) -> str:
    root = ca or server.ca
    return (
        f"rediss://{server.user}:{quote(server.password)}@{host}:{server.port}/0"
        f"?ssl_ca_certs={root}&ssl_cert_reqs=required"
    )
