"""The two installs stay apart: `pip install ".[edge]"` brings no Faust, NiceGUI, asyncpg or
Plotly, and each install's command runs from a clean virtual environment."""

from __future__ import annotations

import pytest

from tests.deploy.venvs import Venv

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

# distribution -> module
HUB_ONLY = {
    "faust-streaming": "faust",
    "nicegui": "nicegui",
    "asyncpg": "asyncpg",
    "plotly": "plotly",
}


def test_edge_install_has_none_of_the_hub_dependencies(edge_venv: Venv) -> None:
    installed = edge_venv.installed()
    assert {"iot-monitoring", "paho-mqtt", "amqtt", "aiokafka"} <= installed
    assert not installed & set(HUB_ONLY)
    for module in HUB_ONLY.values():
        result = edge_venv.run(edge_venv.bin("python"), "-c", f"import {module}")
        assert result.returncode != 0
        assert f"No module named '{module}'" in result.stderr


def test_edge_command_runs(edge_venv: Venv) -> None:
    for args in (("--help",), ("run", "--help"), ("simulate", "--help")):
        result = edge_venv.run(edge_venv.bin("iot-edge"), *args)
        assert result.returncode == 0, result.stderr
        assert "usage: iot-edge" in result.stdout
    # The gateway's own modules import without the hub's dependencies.
    result = edge_venv.run(edge_venv.bin("python"), "-c", "import edge_gateway.app")
    assert result.returncode == 0, result.stderr


def test_hub_install_has_what_the_hub_needs(hub_venv: Venv) -> None:
    installed = hub_venv.installed()
    assert set(HUB_ONLY) | {"iot-monitoring", "redis", "pyyaml"} <= installed
    result = hub_venv.run(
        hub_venv.bin("python"), "-c", "import faust, nicegui, asyncpg, plotly, redis, yaml, hub.app"
    )
    assert result.returncode == 0, result.stderr
    for args in (("--help",), ("worker", "--help"), ("migrate", "--help"), ("web", "--help")):
        result = hub_venv.run(hub_venv.bin("iot-hub"), *args)
        assert result.returncode == 0, result.stderr
        assert "usage: iot-hub" in result.stdout
