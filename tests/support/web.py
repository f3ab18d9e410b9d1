"""`iot-hub web` as a subprocess, and API tokens of every role, for tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from hub.storage.accounts import PostgresAccounts
from hub.storage.audit_model import Actor
from hub.web.model import Role
from tests.support.process import ServiceProcess, free_port

API = "/api/v1"
SETUP_ACTOR = Actor("test-setup", "pytest")  # who the audit log records for test tokens


class WebProcess(ServiceProcess):
    """`iot-hub web` as a subprocess (`python -m hub.cli web`), as an operator starts it. Ready
    means `/readyz` answers 200: the stores are reachable and the live Redis subscription is up,
    so nothing published after `start` returns is lost."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        super().__init__(
            "iot-hub web",
            ["-m", "hub.cli", "web"],
            workdir / "web.log",
            {
                # Not PYTEST_CURRENT_TEST: NiceGUI would take itself for a test run of its own.
                **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
                "HUB_WEB_HOST": "127.0.0.1",
                "HUB_WEB_STORAGE_SECRET": secrets.token_urlsafe(32),
                # Sessions and preferences in the work directory, not in .nicegui/ of the tree.
                "NICEGUI_STORAGE_PATH": str(workdir / "nicegui"),
                **env,
                "HUB_HTTP_PORT": str(self.port),
            },
            f"http://127.0.0.1:{self.port}",
        )

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{API}/live"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code; SIGKILL if it has not exited within ``timeout``."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@dataclass
class Tokens:
    viewer: str
    operator: str
    admin: str
    revoked: str
    names: dict[str, str] = field(default_factory=dict)  # role -> token name

    def all(self) -> list[str]:
        return [self.viewer, self.operator, self.admin, self.revoked]


async def create_tokens(dsn: str) -> Tokens:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        auth = PostgresAccounts(pool)
        tag = uuid.uuid4().hex[:6]
        roles: dict[str, Role] = {
            "viewer": "viewer",
            "operator": "operator",
            "admin": "admin",
            "revoked": "viewer",
        }
        names = {key: f"c-{key}-{tag}" for key in roles}
        created = {
            key: await auth.create_token(names[key], role, actor=SETUP_ACTOR)
            for key, role in roles.items()
        }
        assert await auth.revoke_token(names["revoked"], actor=SETUP_ACTOR)
    finally:
        await pool.close()
    return Tokens(**created, names=names)
