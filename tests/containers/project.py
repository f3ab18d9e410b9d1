"""One compose project on the real Docker engine: `docker-compose up`/`down` for the lifecycle
(the Docker SDK has no compose), the `docker` Python SDK for everything else: finding a
service's container, exec, stop, kill, restart, health, and host PIDs for signals."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container

from tests.deploy.tools import ROOT
from tests.support.waiting import wait_until

UP_TIMEOUT_S = 600


class ComposeFailed(Exception):
    """docker-compose exited non-zero; the message holds what it printed."""


@dataclass
class ComposeProject:
    """`files` are copied into `directory`, so no .env, hub.env or edge.env of the developer's
    leaks in; `env` is all the compose variables it sees (plus PATH)."""

    binary: Path
    directory: Path
    files: Sequence[str]
    env: Mapping[str, str]
    profiles: Sequence[str] = ()
    name: str = field(default_factory=lambda: f"iot-test-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.client = docker.from_env()
        for file in self.files:
            source = ROOT / file
            if source.exists():
                shutil.copy(source, self.directory / file)

    def compose(self, *args: str, timeout: float = UP_TIMEOUT_S) -> str:
        command = [str(self.binary), "-p", self.name]
        for file in self.files:
            command += ["-f", file]
        for profile in self.profiles:
            command += ["--profile", profile]
        result = subprocess.run(
            [*command, *args],
            cwd=self.directory,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.directory), **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ComposeFailed(f"docker-compose {' '.join(args)}: {result.stderr[-4000:]}")
        return result.stdout

    def up(self, *services: str) -> None:
        # The images are built by scripts/images; never build or pull here.
        self.compose("up", "--detach", "--no-build", "--pull", "never", *services)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30")

    def container(self, service: str) -> Container:
        """The service's one container (stopped ones too)."""
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.name}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        if len(found) != 1:
            raise LookupError(f"{len(found)} containers for service {service} of {self.name}")
        return found[0]

    def health(self, service: str) -> str | None:
        """`starting`, `healthy`, `unhealthy`, or None without a healthcheck."""
        container = self.container(service)
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health")
        return None if health is None else str(health["Status"])

    def exec(self, service: str, *command: str) -> str:
        """Run `command` in the service's container: its standard output (AssertionError, with
        both streams, if it fails)."""
        code, (out, err) = self.container(service).exec_run(list(command), demux=True)
        stdout = (out or b"").decode(errors="replace")
        assert code == 0, f"{command} in {service} exited {code}: {stdout}{(err or b'').decode()}"
        return stdout

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a query in the postgres service, through psql (PostgreSQL is not published)."""
        out = self.exec("postgres", "psql", "-U", "iot", "-d", "iot", "-AtF", "|", "-c", query)
        return [line.split("|") for line in out.splitlines() if line]

    def wait_health(self, services: Sequence[str], status: str, timeout: float) -> None:
        def reached() -> bool:
            return all(self.health(s) == status for s in services)

        try:
            wait_until(reached, timeout, f"{', '.join(services)} {status}", interval=1.0)
        except TimeoutError as exc:
            states = {s: self.health(s) for s in services}
            logs = {s: self.container(s).logs(tail=30).decode(errors="replace") for s in services}
            raise TimeoutError(f"{exc}: {states}\n{logs}") from None
