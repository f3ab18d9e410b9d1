"""Device metadata from real edge peers through to the hub's API: a pysparkplug edge node's birth
certificates (engUnit/engLow/engHigh properties) and a Modbus connector's configuration (units,
ranges, place) -> the gateway -> Kafka `iot.device-metadata` -> `iot-hub worker` -> PostgreSQL
-> `GET /api/v1/metadata/devices/{id}` of a real `iot-hub web`; an admin's edit still wins over
a later birth."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from hub.settings import HUB_DLQ_TOPIC
from protocol import topics
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, position_group_at_end
from tests.support.industrial_sim import IndustrialSimulator
from tests.support.kafka import ensure_topics
from tests.support.process import free_port
from tests.support.sparkplug import PeerNode
from tests.support.waiting import async_wait_until
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration


class Hub:
    """A worker and a web process on one fresh database, and a viewer's token."""

    def __init__(self, worker: HubWorkerProcess, web: WebProcess, tokens: Tokens, dsn: str):
        self.worker, self.web, self.tokens, self.dsn = worker, web, tokens, dsn

    async def metadata(self, device_id: str) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {self.tokens.viewer}"}
        async with httpx.AsyncClient(base_url=self.web.url, timeout=15) as client:
            response = await client.get(f"{API}/metadata/devices/{device_id}", headers=headers)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def edge_layer(self, device_id: str) -> dict[str, Any] | None:
        """The device's metadata once its edge layer (and its device row) is stored."""
        body = await self.metadata(device_id)
        if body is None or not body["layers"].get("edge"):
            return None
        return body


@pytest.fixture
async def hub(
    kafka: str, redis_url: str, fresh_database: str, tmp_path: Path
) -> AsyncIterator[Hub]:
    await ensure_topics(kafka, [HUB_DLQ_TOPIC, topics.UNPREFIXED.device_metadata])
    worker = HubWorkerProcess(tmp_path / "hub", kafka, redis_url, database_url=fresh_database)
    await position_group_at_end(kafka, worker.group)
    await position_group_at_end(kafka, worker.group, topics.UNPREFIXED.device_metadata)
    tokens = await create_tokens(fresh_database)
    web = WebProcess(
        tmp_path / "web", {"HUB_DATABASE_URL": fresh_database, "HUB_REDIS_URL": redis_url}
    )
    worker.start()
    await asyncio.to_thread(web.start)
    try:
        yield Hub(worker, web, tokens, fresh_database)
    finally:
        web.stop()
        await worker.stop()
        worker.cleanup()


async def wait_for(hub: Hub, device_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def stored() -> bool:
        body = await hub.edge_layer(device_id)
        if body is not None:
            found.update(body)
        return body is not None

    await async_wait_until(
        stored, 120, f"{device_id}'s edge metadata in the API ({hub.worker.log_path})"
    )
    return found


async def test_sparkplug_births_fill_the_hubs_metadata(
    hub: Hub, kafka: str, tmp_path: Path
) -> None:
    # Ids of this test's own: other tests on the shared Kafka publish press1's and press-01's.
    tag = uuid.uuid4().hex[:8]
    site, node_id = f"sp-{tag}", f"press{tag}"
    device_id = f"{node_id}.motor1"
    gw = GatewayProcess(
        tmp_path / "edge",
        {
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_SPARKPLUG_ENABLED": "true",
            "EDGE_SPARKPLUG_HOST_ID": f"host-{site}",
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
        },
    )
    peer = None
    port = int(gw.env["EDGE_MQTT_PORT"])
    pg = await asyncpg.connect(hub.dsn)

    async def edge_written() -> Any:
        return await pg.fetchval(
            "SELECT updated_at FROM device_metadata WHERE scope = 'device' AND key = $1 "
            "AND source = 'edge'",
            device_id,
        )

    try:
        await asyncio.to_thread(gw.start)
        peer = PeerNode("127.0.0.1", port, site, node_id)
        peer.do("connect")
        device = await wait_for(hub, device_id)
        node = await wait_for(hub, node_id)

        # An admin's unit, then the node comes back: its new births replace the edge layer,
        # and the admin's edit still wins over them.
        edit = {"metrics": {"motor_1_temperature": {"unit": "K"}}}
        async with httpx.AsyncClient(base_url=hub.web.url, timeout=15) as client:
            put = await client.put(
                f"{API}/metadata/devices/{device_id}",
                json=edit,
                headers={"Authorization": f"Bearer {hub.tokens.admin}"},
            )
        assert put.status_code == 200, put.text
        before = await edge_written()
        peer.close()
        peer = PeerNode("127.0.0.1", port, site, node_id)
        peer.do("connect")

        async def rewritten() -> bool:
            return bool(await edge_written() > before)

        await async_wait_until(rewritten, 120, "the rebirth's metadata stored")
        reborn = await hub.metadata(device_id)
        status = gw.status()
    finally:
        if peer is not None:
            peer.close()
        await pg.close()
        assert await asyncio.to_thread(gw.terminate) == 0

    assert reborn is not None
    assert reborn["effective"]["metrics"]["motor_1_temperature"] == {
        "source_name": "Motor 1/Temperature",
        "unit": "K",  # the admin's
        "engineering": [-20.0, 150.0],  # the birth's
    }
    assert reborn["layers"]["edge"]["metrics"]["motor_1_temperature"]["unit"] == "°C"

    assert device["site"] == site
    metrics = device["effective"]["metrics"]
    assert metrics["motor_1_temperature"] == {
        "source_name": "Motor 1/Temperature",
        "unit": "°C",
        "engineering": [-20.0, 150.0],
    }
    # engLow > engHigh: the metric's metadata is left out, its readings are not
    assert "speed_rpm" not in metrics
    assert node["effective"]["metrics"]["hydraulic_pressure_bar"] == {
        "source_name": "Hydraulic/Pressure (bar)",
        "unit": "bar",
        "engineering": [0.0, 400.0],
        "description": "main cylinder",
    }
    assert set(node["effective"]["metrics"]) == {"hydraulic_pressure_bar", "running"}
    assert status["counters"]["device_metadata_total"] == 4  # two births, twice
    assert status["sparkplug"]["by_reason"]["metadata_bad_range"] == 2
    # logged once per device, metric and reason
    (line,) = [x for x in gw.log().splitlines() if "reason=metadata_bad_range" in x]
    assert "event=sparkplug_skipped" in line
    assert "Speed RPM: engLow 10 is greater than engHigh 5" in line


async def test_a_modbus_connectors_configuration_fills_the_hubs_metadata(
    hub: Hub, kafka: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    site, device_id = f"site-{tag}", f"press-{tag}"
    simulator = IndustrialSimulator("modbus", tmp_path).start()
    config = yaml.safe_load(simulator.connectors_file.read_text())
    press = next(d for d in config["connectors"][0]["devices"] if d["device_id"] == "press-01")
    press.update(
        {"device_id": device_id, "display_name": "Press 1", "area": "Forming", "line": "Line 2"}
    )
    ram = next(r for r in press["registers"] if r["metric"] == "ram_pressure_bar")
    ram.update({"unit": "psi", "engineering": [0, 6000], "display_name": "Ram"})
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(yaml.safe_dump(config))
    gw = GatewayProcess(
        tmp_path / "edge",
        {
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_CONNECTORS_FILE": str(connectors),
        },
    )
    try:
        await asyncio.to_thread(gw.start)
        found = await wait_for(hub, device_id)
        status = gw.status()
    finally:
        assert await asyncio.to_thread(gw.terminate) == 0
        simulator.stop()

    edge = found["layers"]["edge"]
    assert (edge["display_name"], edge["area"], edge["line"]) == ("Press 1", "Forming", "Line 2")
    assert edge["metrics"]["ram_pressure_bar"] == {
        "display_name": "Ram",
        "unit": "psi",
        "engineering": [0.0, 6000.0],
    }
    effective = found["effective"]
    assert effective["metrics"]["ram_pressure_bar"]["unit"] == "psi"  # the device's over its type's
    # what the configuration leaves unset comes from the type's seed (hydraulic_press: normal)
    assert effective["metrics"]["ram_pressure_bar"]["normal"] == [0.0, 250.0]
    assert found["type"] == "hydraulic_press"
    assert status["counters"]["device_metadata_total"] == len(config["connectors"][0]["devices"])
