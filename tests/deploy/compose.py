"""`docker-compose config` (Compose v2, no engine needed) on copies of the repository's compose
files: the tool validates them against the Compose specification, merges, interpolates and
applies profiles, and prints the effective model, which the tests then inspect."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.tools import ROOT

COMPOSE_FILES = ("compose.edge.yml", "compose.hub.yml")


class ComposeError(Exception):
    """docker-compose refused the files; the message is what it printed."""


@dataclass(frozen=True)
class Compose:
    binary: Path
    directory: Path

    @classmethod
    def in_directory(cls, binary: Path, directory: Path) -> Compose:
        for name in (*COMPOSE_FILES, "Dockerfile"):
            shutil.copy(ROOT / name, directory / name)
        return cls(binary, directory)

    def config(
        self, *files: str, profiles: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        args = [str(self.binary)]
        for name in files:
            args += ["-f", name]
        for profile in profiles:
            args += ["--profile", profile]
        args += ["config", "--format", "json"]
        result = subprocess.run(
            args,
            cwd=self.directory,
            # Only what the test gives: no COMPOSE_* or IOT_* of the caller's shell.
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.directory), **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise ComposeError(result.stderr)
        model: dict[str, Any] = json.loads(result.stdout)
        return model
