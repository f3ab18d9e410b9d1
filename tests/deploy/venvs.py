"""A clean virtual environment with one extra of the project installed, the way a user installs
it (`pip install ".[edge]"`), from a copy of the sources so the work tree stays untouched."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT

PROJECT_FILES = ("pyproject.toml", "README.md")
# The packages pyproject.toml ships ("protocol*" -> protocol/), so a new one cannot be missed.
PROJECT_DIRS = tuple(
    pattern.rstrip("*")
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
)
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Venv:
    path: Path

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
        )

    def installed(self) -> set[str]:
        """Distribution names, normalised (lower case, `-`)."""
        listing = self.run(
            self.bin("python"),
            "-c",
            "import importlib.metadata as m; "
            "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))",
        )
        assert listing.returncode == 0, listing.stderr
        return {n.strip().lower().replace("_", "-") for n in listing.stdout.split()}


def copy_sources(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, target / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def install_extra(extra: str, workdir: Path, config: pytest.Config) -> Venv:
    source = copy_sources(workdir / "src")
    venv = Venv(workdir / "venv")
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[tests/deploy] pip install '.[{extra}]' into a clean venv...", flush=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv.path)], check=True, timeout=120)
        result = subprocess.run(
            [
                str(venv.bin("pip")),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                f"{source}[{extra}]",
            ],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        print(
            f"[tests/deploy] '.[{extra}]' installed in {time.monotonic() - started:.0f} s",
            flush=True,
        )
    if result.returncode != 0:
        pytest.fail(f"pip install '.[{extra}]' failed:\n{result.stdout}\n{result.stderr}")
    return venv
