"""The deployment tools, built by scripts/tools into .local/bin on first use (a clean clone has
none): progress goes straight to the terminal, since the first build takes minutes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "scripts" / "tools"
BUILD_TIMEOUT_S = 1800


def install_tool(name: str, config: pytest.Config) -> Path:
    """Build `name` (helm or compose) if it is missing, and return its path."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[tests/deploy] scripts/tools install {name}", flush=True)
        result = subprocess.run([str(TOOLS), "install", name], timeout=BUILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/tools install {name} failed with exit code {result.returncode}")
    path = subprocess.run(
        [str(TOOLS), "path", name], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    return Path(path)
