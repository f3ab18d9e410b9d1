"""Start the real local services through the project's own scripts (idempotent, with readiness
checks), so a test run on a fresh machine brings up what it needs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"


def run_services(action: str, *names: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [str(SERVICES), action, *names],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/services {action} {' '.join(names)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )


def kafka_bootstrap() -> str:
    return f"{os.environ.get('KAFKA_HOST', '127.0.0.1')}:{os.environ.get('KAFKA_PORT', '9092')}"


def mosquitto_address() -> tuple[str, int]:
    return os.environ.get("MOSQUITTO_HOST", "127.0.0.1"), int(
        os.environ.get("MOSQUITTO_PORT", "1884")
    )
