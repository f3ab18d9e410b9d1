"""A command of this repository as a real subprocess, as an operator runs it: `python -m ...`
from the repository root, its output appended to a log file, ready once its HTTP `/readyz`
answers 200."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` to its end, with exactly `env`; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServiceProcess:
    """``python ARGS`` with ``env`` as its environment, serving HTTP at ``url``."""

    def __init__(
        self, name: str, args: Sequence[str], log_path: Path, env: dict[str, str], url: str
    ) -> None:
        self.name = name  # in messages: "gateway", "iot-hub web"
        self.args = list(args)
        self.log_path = log_path
        self.env = env
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Self:
        self.launch()
        wait_until(self._ready, timeout, f"{self.name} ready (log {self.log_path})")
        return self

    def launch(self) -> Self:
        """Start the process without waiting for it to be ready (for one that should not be)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
