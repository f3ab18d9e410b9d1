"""Render the Helm chart with the real helm binary, and pick objects out of the manifests."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import ROOT

CHART = ROOT / "helm" / "iot-hub"
RELEASE = "iot"

Manifest = dict[str, Any]

# The connection settings a real install must give; nothing else is needed to render.
MINIMAL_VALUES: dict[str, Any] = {
    "kafka": {"bootstrap": "kafka.data.svc:9092"},
    "database": {"url": "postgresql://iot:test-only@postgres.data.svc:5432/iot"},
    "redis": {"url": "redis://redis.data.svc:6379/0"},
}


class RenderError(Exception):
    """helm refused to render; the message is what helm printed."""


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # HELM_*_HOME: no user configuration or cache leaks in

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return subprocess.run(
            [str(self.binary), *args], env=env, capture_output=True, text=True, timeout=120
        )

    def values_file(self, values: Mapping[str, Any], name: str = "values") -> Path:
        text = yaml.safe_dump(dict(values))
        path = self.home / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
        path.write_text(text)
        return path

    def template(self, values: Mapping[str, Any] | None = None, *files: Path) -> list[Manifest]:
        args = ["template", RELEASE, str(CHART), "--namespace", "iot"]
        if values is not None:
            args += ["-f", str(self.values_file(values))]
        for extra in files:
            args += ["-f", str(extra)]
        result = self.run(*args)
        if result.returncode != 0:
            raise RenderError(result.stderr)
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def lint(self, values: Mapping[str, Any] | None = None, *files: Path) -> str:
        args = ["lint", "--strict", str(CHART)]
        if values is not None:
            args += ["-f", str(self.values_file(values))]
        for extra in files:
            args += ["-f", str(extra)]
        result = self.run(*args)
        if result.returncode != 0:
            raise RenderError(result.stdout + result.stderr)
        return result.stdout + result.stderr


SCHEMA_REFUSAL = "values don't meet the specifications of the schema"


def refusal(helm: Helm, override: Mapping[str, Any]) -> str:
    """What helm prints refusing MINIMAL_VALUES with `override` (AssertionError if it renders)."""
    try:
        helm.template(merged(MINIMAL_VALUES, override))
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"helm rendered {override}")


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of values, later layers win (like several -f files)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def find(docs: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(docs: Iterable[Manifest]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def container(deployment: Manifest) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(deployment: Manifest) -> dict[str, Any]:
    """name -> value, or the valueFrom mapping for the ones that come from a Secret."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}
