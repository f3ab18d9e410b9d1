"""`make demo` as a person runs it (`scripts/demo`, after `make` started the services): the
dashboard's URL and login are printed once the web app answers, the five simulators' devices
reach the API with their latest values and their readings in PostgreSQL, and Ctrl-C stops
every process it started, cleanly.

Ports, database, consumer group and site are this test's own, so it neither collides with
other tests nor replays their records.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_gateway.simulators.catalog import ALL_TYPES
from tests.support.hub import position_group_at_end
from tests.support.process import ROOT, free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DASHBOARD_LINE = re.compile(r"dashboard:\s+(http://\S+)\s+login: (\S+) / (\S+)")


class DemoProcess:
    """scripts/demo in its own process group (as a terminal runs it), output collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "demo")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def ctrl_c(self) -> None:
        """What Ctrl-C in the terminal does: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def kill(self) -> None:
        """Whatever is left of the group, gone; the output pipe closed."""
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def demo(
    tmp_path: Path, fresh_database: str, kafka: str, redis_url: str
) -> Iterator[tuple[DemoProcess, dict[str, str]]]:
    group = f"hub-demo-test-{uuid.uuid4().hex[:8]}"
    asyncio.run(position_group_at_end(kafka, group))
    env = {
        **os.environ,
        "IOT_DEMO_DIR": str(tmp_path / "demo"),
        "HUB_DATABASE_URL": fresh_database,
        "HUB_REDIS_URL": redis_url,
        "HUB_KAFKA_BOOTSTRAP": kafka,
        "HUB_CONSUMER_GROUP": group,
        "HUB_HTTP_PORT": str(free_port()),
        "HUB_WORKER_WEB_PORT": "0",
        "EDGE_KAFKA_BOOTSTRAP": kafka,
        "EDGE_MQTT_PORT": str(free_port()),
        "EDGE_HTTP_PORT": str(free_port()),
        "EDGE_SITE": f"demo-{uuid.uuid4().hex[:6]}",
        "EDGE_GATEWAY_ID": f"gw-demo-{uuid.uuid4().hex[:6]}",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    process = DemoProcess(env)
    try:
        yield process, env
    finally:
        process.kill()


def test_demo_serves_the_dashboard_and_stops_on_ctrl_c(
    demo: tuple[DemoProcess, dict[str, str]],
) -> None:
    process, env = demo
    match = wait_until(
        lambda: DASHBOARD_LINE.search(process.output()),
        180,
        "the dashboard line",
        interval=0.2,
    )
    url, user, password = match[1], match[2], match[3]
    assert url == f"http://127.0.0.1:{env['HUB_HTTP_PORT']}/"
    assert user == "demo"
    assert len(password) >= 16
    assert password not in (Path(env["IOT_DEMO_DIR"]) / "web.log").read_text()

    token = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "iot-hub"),
            "token",
            "create",
            "demo-test",
            "--role",
            "viewer",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:

        def five_devices_with_values() -> list[dict[str, Any]] | None:
            body = client.get("/api/v1/devices", params={"site": env["EDGE_SITE"]}).json()
            items: list[dict[str, Any]] = body["items"]
            # Telemetry in PostgreSQL (a status message alone leaves type and last_seen
            # unset) and latest values in Redis.
            ready = [d for d in items if d["type"] and d["last_seen"] and d["latest"]]
            return items if len(ready) == 5 else None

        devices = wait_until(five_devices_with_values, 120, "five simulated devices", 0.5)
        assert {d["type"] for d in devices} == set(ALL_TYPES), devices
        first = devices[0]
        series = client.get(
            f"/api/v1/devices/{first['device_id']}/readings",
            params={"metric": first["metrics"][0]},
        ).json()
        assert series["ts"], series

    process.ctrl_c()
    assert process.proc.wait(90) == 0, process.output()
    wait_until(lambda: not process.group_alive(), 30, "every demo process to exit")
    assert "stopping the hub worker and the web app" in process.output()
