"""The engine and the images, made by the same scripts as `make images` (scripts/docker start,
scripts/images build): progress goes straight to the terminal, since a first build takes minutes.
Afterwards .local/images.env names every image (public or local equivalent) by its compose
variable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT

SCRIPTS = ROOT / "scripts"
# Where scripts/images writes it (IOT_STATE_DIR, as scripts/lib).
IMAGES_ENV = Path(os.environ.get("IOT_STATE_DIR") or ROOT / ".local").resolve() / "images.env"
BUILD_TIMEOUT_S = 3600


def _run(config: pytest.Config, *command: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[tests/containers] {' '.join(command)}", flush=True)
        result = subprocess.run(
            [str(SCRIPTS / command[0]), *command[1:]], timeout=BUILD_TIMEOUT_S, check=False
        )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed with exit code {result.returncode}")


def read_env_file(path: Path) -> dict[str, str]:
    images: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            images[key.strip()] = value.strip()
    return images


def build_images(config: pytest.Config) -> dict[str, str]:
    """Start the engine, build the images; IOT_*_IMAGE -> image name."""
    _run(config, "docker", "start")
    _run(config, "images", "build")
    return read_env_file(IMAGES_ENV)
