"""Buffer runway on a real gateway whose Kafka is unreachable: finite and falling in the status
API, `/metrics` and `iot-edge status`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iot_common.prometheus import parse
from tests.support.gateway import GatewayProcess
from tests.support.process import ROOT, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MAX_BYTES = 2_000_000


def runway_of(gw: GatewayProcess) -> float | None:
    runway: float | None = gw.status()["buffer"]["runway_s"]
    return runway


async def test_runway_is_finite_and_falls_while_kafka_is_unreachable(tmp_path: Path) -> None:
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_BUFFER_MAX_BYTES": str(MAX_BYTES),
            "EDGE_SIMULATORS": "all",
            "EDGE_SIMULATOR_RATE_HZ": "10",
            # Nothing listens there: the buffer only grows.
            "EDGE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        },
    )
    await asyncio.to_thread(gw.start)
    try:
        first = await asyncio.to_thread(wait_until, lambda: runway_of(gw), 60, "a runway")

        def fallen() -> dict[str, Any] | None:
            status = gw.status()
            runway = status["buffer"]["runway_s"]
            return status if runway is not None and runway < first * 0.95 else None

        status = await asyncio.to_thread(wait_until, fallen, 120, "the runway to fall")
        _, metrics = await asyncio.to_thread(gw.get, "/metrics")
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "edge_gateway.cli", "status", "--url", gw.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        assert await asyncio.to_thread(gw.terminate) == 0
    buffer = status["buffer"]
    assert not status["kafka"]["connected"]
    assert 0 < buffer["runway_s"] < first
    assert buffer["bytes"] < MAX_BYTES  # still room: the runway is not yet 0
    assert buffer["dropped_total"] == 0
    exposed = parse(metrics)["edge_buffer_runway_seconds"]
    assert 0 < exposed < first
    assert shown.returncode == 0, shown.stderr
    assert "full in" in shown.stdout
