"""A redis-server of a test's own, for putting it in states the shared one must never be in
(out of memory, a read-only replica, ACL users): a free loopback port, no persistence, killed
afterwards."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import redis
from redis.asyncio import Redis

from tests.support.process import free_port
from tests.support.waiting import wait_until


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        options = {"port": self.port, "bind": "127.0.0.1", "appendonly": "no", "dir": self.workdir}
        args = [item for name, value in options.items() for item in (f"--{name}", str(value))]
        self.proc = subprocess.Popen(
            [executable, *args, "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return False  # refused, or still loading
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@contextmanager
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """A running RedisServer, killed on the way out."""
    server = RedisServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def acl_setuser(client: Redis, user: str, *rules: str) -> None:
    """`ACL SETUSER user rules...` with the rules as an operator types them (`on`, `>password`,
    `~*`, `&*`, `+@all`, `resetchannels`, ...)."""
    execute = cast(Callable[..., Awaitable[object]], client.execute_command)  # untyped in redis-py
    await execute("ACL", "SETUSER", user, *rules)
