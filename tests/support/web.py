"""`iot-hub web` as a subprocess, and API tokens of every role, for tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from hub.web.auth import AuthStore
from hub.web.model import Role
from tests.support.gateway import ROOT, free_port
from tests.support.waiting import wait_until

API = "/api/v1"


class WebProcess:
    """`iot-hub web` as a subprocess (`python -m hub.cli web`), as an operator starts it."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {
            # Not PYTEST_CURRENT_TEST: NiceGUI would take itself for a test run of its own.
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
            "HUB_WEB_HOST": "127.0.0.1",
            "HUB_WEB_STORAGE_SECRET": secrets.token_urlsafe(32),
            **env,
            "HUB_HTTP_PORT": str(self.port),
        }
        self.log_path = workdir / "web.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{API}/live"

    def start(self, timeout: float = 60) -> WebProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "web"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout, f"iot-hub web ready (log {self.log_path})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"iot-hub web exited with {self.proc.returncode}:\n{self.log()}")
        try:
            # Ready includes the live Redis subscription: nothing published after this is lost.
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int:
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
        auth = AuthStore(pool)
        tag = uuid.uuid4().hex[:6]
        roles: dict[str, Role] = {
            "viewer": "viewer",
            "operator": "operator",
            "admin": "admin",
            "revoked": "viewer",
        }
        names = {key: f"c-{key}-{tag}" for key in roles}
        created = {key: await auth.create_token(names[key], role) for key, role in roles.items()}
        assert await auth.revoke_token(names["revoked"])
    finally:
        await pool.close()
    return Tokens(**created, names=names)
