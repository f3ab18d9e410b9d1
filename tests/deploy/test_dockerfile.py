"""The Dockerfile's promises, read from the file (no Docker engine here): the two targets, a
non-root user and a HEALTHCHECK in each, dependencies in their own layers ahead of the source,
nothing but the runtime in the final stages, and the edge image built from the edge extra only.
And .dockerignore keeps the venv, local state, VCS and tests out of the build context."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib

import pytest

from tests.deploy.dockerfile import Dockerfile
from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

SOURCE_DIRS = ("protocol/", "edge_gateway/", "hub/", "db/")
HUB_ONLY_PACKAGES = ("faust", "nicegui", "asyncpg", "plotly")
TARGETS = {
    "edge": ("iot-edge", "run", "EDGE_HTTP_PORT", "8081"),
    "hub": ("iot-hub", "web", "HUB_HTTP_PORT", "8080"),
}


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse((ROOT / "Dockerfile").read_text())


def copies_from(dockerfile: Dockerfile, target: str) -> set[str]:
    stages = set()
    for stage in dockerfile.chain(target):
        for arguments in stage.all("COPY"):
            match = re.search(r"--from=(\S+)", arguments)
            if match:
                stages.add(match[1])
    return stages


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_on_python_slim(dockerfile: Dockerfile, target: str) -> None:
    assert target in dockerfile.stages
    assert dockerfile.base_image(target).startswith("python:3.11-slim")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_runs_as_an_unprivileged_user(dockerfile: Dockerfile, target: str) -> None:
    user = dockerfile.effective(target, "USER")
    assert user is not None
    uid = user.split(":")[0]
    assert uid not in ("root", "0")
    # Numeric, so that Kubernetes runAsNonRoot can verify it.
    assert uid.isdigit()
    assert int(uid) >= 1000
    created = " ".join(i for s in dockerfile.chain(target) for i in s.all("RUN"))
    assert f"--uid {uid}" in created


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_checks_its_own_health_endpoint(dockerfile: Dockerfile, target: str) -> None:
    command, default_command, port_variable, port = TARGETS[target]
    check = dockerfile.stages[target].last("HEALTHCHECK")
    assert check is not None, f"no HEALTHCHECK in the {target} stage"
    assert "CMD" in check
    assert "curl" not in check  # slim has no curl
    assert "urllib.request" in check
    assert "/healthz" in check
    assert f"os.environ.get('{port_variable}', '{port}')" in check
    assert dockerfile.effective(target, "ENTRYPOINT") == f'["{command}"]'
    assert dockerfile.effective(target, "CMD") == f'["{default_command}"]'
    assert port in (dockerfile.effective(target, "EXPOSE") or "").split()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_takes_only_its_own_venv(dockerfile: Dockerfile, target: str) -> None:
    other = ({"edge", "hub"} - {target}).pop()
    assert copies_from(dockerfile, target) == {f"venv-{target}"}
    venv_chain = [s.name for s in dockerfile.chain(f"venv-{target}")]
    assert f"deps-{target}" in venv_chain
    assert f"deps-{other}" not in venv_chain
    deps = dockerfile.stages[f"deps-{target}"]
    assert any(f"requirements-{target}.txt" in a for a in deps.all("COPY"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_dependencies_are_installed_before_the_source_is_copied(
    dockerfile: Dockerfile, target: str
) -> None:
    for stage in dockerfile.chain(f"deps-{target}"):
        for arguments in stage.all("COPY"):
            assert not any(d in arguments for d in SOURCE_DIRS), (stage.name, arguments)
    assert any("install -r" in r for r in dockerfile.stages[f"deps-{target}"].all("RUN"))
    # The source arrives later, in the wheel stage.
    wheel_copies = " ".join(dockerfile.stages["wheel"].all("COPY"))
    assert all(d in wheel_copies for d in SOURCE_DIRS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_final_stage_has_no_build_tools_or_caches(dockerfile: Dockerfile, target: str) -> None:
    runs = " ".join(r for s in dockerfile.chain(target) for r in s.all("RUN"))
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "pip wheel"):
        assert tool not in runs, tool
    assert "pip uninstall --yes --quiet pip setuptools wheel" in runs
    assert dockerfile.env(target)["PIP_NO_CACHE_DIR"] == "1"
    for arguments in (a for s in dockerfile.chain(target) for a in s.all("COPY")):
        assert arguments.endswith("/opt/venv /opt/venv"), arguments


def requirements_script(dockerfile: Dockerfile) -> str:
    (run,) = dockerfile.stages["requirements"].all("RUN")
    match = re.search(r"python -c '([^']+)'", run)
    assert match, run
    return match[1]


def test_requirements_come_from_the_pyproject_extras(dockerfile: Dockerfile) -> None:
    # Run the Dockerfile's own extraction on the real pyproject.toml.
    script = requirements_script(dockerfile)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra in ("edge", "hub"):
        result = subprocess.run(
            [sys.executable, "-c", script, extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        expected = project["dependencies"] + project["optional-dependencies"][extra]
        assert result.stdout.splitlines() == expected
    edge = "\n".join(project["dependencies"] + project["optional-dependencies"]["edge"]).lower()
    for package in HUB_ONLY_PACKAGES:
        assert package not in edge


def test_container_defaults(dockerfile: Dockerfile) -> None:
    edge = dockerfile.env("edge")
    # The hub's Kafka by its compose service name; the buffer in the directory the volume mounts.
    assert edge["EDGE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    buffer_dir = edge["EDGE_BUFFER_PATH"].rsplit("/", 1)[0]
    assert any(
        f"-o iot -g iot -m 0750 {buffer_dir}" in r for r in dockerfile.stages["edge"].all("RUN")
    )
    hub = dockerfile.env("hub")
    assert hub["HUB_WEB_HOST"] == "0.0.0.0"
    assert hub["NICEGUI_STORAGE_PATH"].startswith("/tmp/")
    assert not any(name.startswith("HUB_") for name in edge)
    assert not any(name.startswith("EDGE_") for name in hub)


def ignored(patterns: list[str], path: str) -> bool:
    """.dockerignore semantics for the patterns used here: last match wins, `!` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates) or (
            pattern.startswith("**/")
            and any(fnmatch.fnmatch(part, candidates[1]) for part in parts)
        ):
            result = not negate
    return result


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".venv",
        ".venv/bin/python",
        ".local/bin/helm",
        ".git/HEAD",
        "tests/conftest.py",
        "hub/__pycache__/app.cpython-311.pyc",
        "edge.env",
        ".env",
    ):
        assert ignored(patterns, path), path
    for path in (
        "pyproject.toml",
        "README.md",
        "protocol/models.py",
        "edge_gateway/cli.py",
        "hub/app.py",
        "hub/rules/defaults.yaml",
        "db/0001_init.sql",
    ):
        assert not ignored(patterns, path), path
