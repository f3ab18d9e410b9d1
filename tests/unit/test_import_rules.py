"""Who may import whom: the edge and the hub never import each other, what both run
(`iot_common`, `protocol`) imports neither, `protocol` needs only pydantic, and the edge install
stays lean (none of the hub's heavy dependencies). Read from the source, imports inside
functions included."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edge_gateway", "hub", "iot_common", "protocol")
# Dependencies only the hub install has (pyproject.toml: [project.optional-dependencies] hub).
HUB_ONLY = {"faust", "mode", "nicegui", "asyncpg", "plotly", "redis", "fastapi"}
FORBIDDEN: dict[str, set[str]] = {
    "edge_gateway": {"hub"} | HUB_ONLY,
    "hub": {"edge_gateway"},
    "iot_common": {"edge_gateway", "hub"} | HUB_ONLY,
}


def imported_modules(path: Path) -> set[str]:
    """The module of every absolute import in the file."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every absolute import in the file."""
    return {module.split(".")[0] for module in imported_modules(path)}


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_rules_see_every_package() -> None:
    for package in PACKAGES:
        assert sources(package), package
    # The reader finds imports at any depth, so a rule cannot pass by not looking.
    assert "edge_gateway" in imported_roots(ROOT / "edge_gateway" / "cli.py")
    assert "nicegui" in set().union(*(imported_roots(p) for p in sources("hub")))
    assert "hub.worker.worker" in imported_modules(ROOT / "hub" / "app.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_imports(package: str) -> None:
    found = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources(package)
        for name in imported_roots(path) & FORBIDDEN[package]
    }
    assert not found, sorted(found)


def test_protocol_needs_only_pydantic_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core", "protocol"}
    found = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("protocol")
        for name in imported_roots(path) - allowed
    }
    assert not found, sorted(found)


# Inside the hub: the web app and the stores do not reach into the worker's agents.
HUB_LAYERS = {"hub/web": ("hub.agents", "hub.worker"), "hub/storage": ("hub.agents", "hub.worker")}


@pytest.mark.parametrize("layer", sorted(HUB_LAYERS))
def test_hub_layers(layer: str) -> None:
    forbidden = HUB_LAYERS[layer]
    found = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for module in imported_modules(path)
        if module.startswith(forbidden)
    }
    assert not found, sorted(found)
