"""What an operator touches: the CLI, the status endpoints, broker authentication, shutdown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from protocol import decode_telemetry_value, topics
from tests.support.gateway import GatewayProcess
from tests.support.kafka import KafkaTail
from tests.support.mqtt import Publisher
from tests.support.process import ROOT, free_port

pytestmark = pytest.mark.integration


def iot_edge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_gateway.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [[], ["run"], ["simulate"], ["status"], ["passwd"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = iot_edge(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: iot-edge" in result.stdout


async def test_status_endpoints_cli_and_clean_shutdown(kafka: str, tmp_path: Path) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_MQTT_PASSWORD": "not-printed-anywhere",
        },
    )
    await asyncio.to_thread(gw.start)
    try:
        assert gw.get("/healthz")[0] == 200
        code, body = gw.get("/readyz")
        assert code == 200
        assert '"mqtt_subscribed": true' in body
        code, metrics = gw.get("/metrics")
        assert code == 200
        assert "# TYPE edge_received_total counter" in metrics
        assert "edge_kafka_connected" in metrics
        status = gw.status()
        assert status["gateway_id"] == gateway_id
        shown = await asyncio.to_thread(iot_edge, "status", "--url", gw.url)
        assert shown.returncode == 0, shown.stderr
        assert gateway_id in shown.stdout
        assert "buffer" in shown.stdout
    finally:
        assert await asyncio.to_thread(gw.terminate) == 0
    log = gw.log()
    assert "EDGE_MQTT_PASSWORD=***" in log
    assert "not-printed-anywhere" not in log
    assert "gateway_stopped" in log
    gone = await asyncio.to_thread(iot_edge, "status", "--url", gw.url)
    assert gone.returncode == 1
    assert "no gateway answering" in gone.stderr


async def test_embedded_broker_password_file(kafka: str, tmp_path: Path) -> None:
    passwd = tmp_path / "mqtt.passwd"
    for user, secret in (("bridge", "bridge-secret"), ("press-01", "device-secret")):
        added = await asyncio.to_thread(
            iot_edge, "passwd", str(passwd), user, "--stdin", stdin=secret + "\n"
        )
        assert added.returncode == 0, added.stderr
    assert "device-secret" not in passwd.read_text()
    site, mqtt_port = f"site-{uuid.uuid4().hex[:8]}", free_port()
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(mqtt_port),
            "EDGE_MQTT_PASSWORD_FILE": str(passwd),
            "EDGE_MQTT_USERNAME": "bridge",
            "EDGE_MQTT_PASSWORD": "bridge-secret",
        },
    )
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail:
        await asyncio.to_thread(gw.start)
        try:
            anonymous = Publisher("127.0.0.1", mqtt_port)
            with pytest.raises(ConnectionRefusedError):
                anonymous.wait_connected()
            anonymous.close()
            wrong = Publisher("127.0.0.1", mqtt_port, username="press-01", password="guess")
            with pytest.raises(ConnectionRefusedError):
                wrong.wait_connected()
            wrong.close()
            device = Publisher(
                "127.0.0.1", mqtt_port, username="press-01", password="device-secret"
            )
            device.wait_connected()
            device.publish(
                f"plant/{site}/press-01/telemetry", {"metrics": {"ram_pressure_bar": 180}}
            )
            await asyncio.to_thread(device.wait_acked)
            device.close()
            records = await tail.collect_until(
                lambda recs: any(site.encode() in r.value for r in recs), 30, "the reading"
            )
        finally:
            assert await asyncio.to_thread(gw.terminate) == 0
    reading = next(
        reading
        for r in records
        if site.encode() in r.value
        for reading in decode_telemetry_value(r.value)
    )
    assert reading.metrics == {"ram_pressure_bar": 180.0}
