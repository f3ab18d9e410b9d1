"""Deployment checks: the images, the compose files and the Helm chart, with real tools (helm,
docker-compose) built on first use; no Docker engine or Kubernetes cluster needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.chart import Helm
from tests.deploy.compose import Compose
from tests.deploy.tools import install_tool
from tests.deploy.venvs import Venv, install_extra


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deploy: images, compose files and Helm chart (builds helm and compose once)"
    )


@pytest.fixture(scope="session")
def helm(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(install_tool("helm", pytestconfig), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def compose_binary(pytestconfig: pytest.Config) -> Path:
    return install_tool("compose", pytestconfig)


@pytest.fixture
def compose(compose_binary: Path, tmp_path: Path) -> Compose:
    """docker-compose on copies of the compose files in an empty directory: no .env or edge.env
    of the developer's leaks in."""
    return Compose.in_directory(compose_binary, tmp_path)


@pytest.fixture(scope="session")
def edge_venv(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return install_extra("edge", tmp_path_factory.mktemp("edge-install"), pytestconfig)


@pytest.fixture(scope="session")
def hub_venv(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return install_extra("hub", tmp_path_factory.mktemp("hub-install"), pytestconfig)
