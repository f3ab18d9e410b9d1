"""`iot-edge simulate --protocol opcua|modbus` -> a gateway reading it with the connectors file
the simulator wrote -> the gateway's buffer and forwarder -> real Kafka; the connector's health
in the status API, /metrics and the heartbeat; on through a hub worker to rows in PostgreSQL;
a bad connectors file refused at start."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest

from edge_gateway.simulators.catalog import ALL_TYPES, DEVICE_ID_PREFIX, METRICS
from hub.settings import HUB_DLQ_TOPIC
from protocol import EdgeMetrics, topics
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, end_offsets, position_group
from tests.support.industrial_sim import IndustrialSimulator
from tests.support.kafka import KafkaTail, Record, ensure_topics, telemetry_readings
from tests.support.process import free_port, run_module
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
async def test_simulated_servers_through_the_gateway_to_kafka(
    protocol: str, kafka: str, tmp_path: Path
) -> None:
    site, gateway_id = f"site-{uuid.uuid4().hex[:8]}", f"gw-{uuid.uuid4().hex[:8]}"
    simulator = IndustrialSimulator(protocol, tmp_path).start()
    gateway = GatewayProcess(
        tmp_path / "edge",
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_CONNECTORS_FILE": str(simulator.connectors_file),
        },
    )
    wanted = 5

    def complete(records: list[Record]) -> bool:
        per_type: dict[str | None, int] = defaultdict(int)
        for reading in telemetry_readings(records, site):
            per_type[reading.type] += 1
        heartbeats = [
            r
            for r in records
            if r.topic == topics.EDGE_METRICS
            and r.key == gateway_id.encode()
            and b'"connectors"' in r.value
        ]
        return all(per_type[t] >= wanted for t in ALL_TYPES) and bool(heartbeats)

    try:
        async with KafkaTail(kafka, [topics.TELEMETRY, topics.EDGE_METRICS]) as tail:
            await asyncio.to_thread(gateway.start)
            records = await tail.collect_until(complete, 120, f"{protocol} readings in Kafka")
            status = gateway.status()
            code, metrics = gateway.get("/metrics")
        assert await asyncio.to_thread(gateway.terminate) == 0
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.kill()
        simulator.stop()

    readings = telemetry_readings(records, site)
    assert all(r.gateway_id == gateway_id for r in readings)
    for device_type in ALL_TYPES:
        ours = [r for r in readings if r.type == device_type]
        names = {m.name for m in METRICS[device_type]}
        # Every metric of the type arrives, and nothing else.
        assert set().union(*(r.metrics for r in ours)) == names, device_type
    if protocol == "modbus":
        # One poll, one reading with every value of the device.
        assert all(len(r.metrics) == len(METRICS[r.type or ""]) for r in readings)
    (connector,) = status["connectors"]
    assert connector["kind"] == protocol
    assert connector["connected"] is True
    assert connector["values_total"] > 0
    assert connector["errors"] == {}
    assert status["counters"]["dead_lettered_total"] == 0
    assert code == 200
    assert f'edge_connector_connected{{connector="{connector["name"]}",kind="{protocol}"}} 1' in (
        metrics
    )
    heartbeat = next(
        EdgeMetrics.model_validate_json(r.value)
        for r in records
        if r.topic == topics.EDGE_METRICS
        and b'"connectors"' in r.value
        and r.key == gateway_id.encode()
    )
    assert heartbeat.connectors is not None
    assert heartbeat.connectors[0].name == connector["name"]


def test_a_bad_connectors_file_stops_the_gateway_at_start(tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text(
        "connectors:\n"
        "  - {name: plc, kind: modbus, endpoint: 'tcp://127.0.0.1:5020', devices: [\n"
        "      {device_id: press-01, registers: [{metric: ok, address: 0},\n"
        "                                        {metric: bad, address: 2, type: int8}]}]}\n"
    )
    env = {
        **os.environ,
        "EDGE_CONNECTORS_FILE": str(path),
        "EDGE_BUFFER_PATH": str(tmp_path / "buffer.db"),
        "EDGE_HTTP_PORT": str(free_port()),
        "EDGE_MQTT_PORT": str(free_port()),
    }
    result = run_module("edge_gateway.cli", "run", env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "EDGE_CONNECTORS_FILE" in line]
    assert len(lines) == 1
    assert lines[0].startswith(
        "invalid setting EDGE_CONNECTORS_FILE: connectors[0].devices[0].registers[1].type:"
    )
    assert not (tmp_path / "buffer.db").exists()


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
async def test_connector_readings_through_a_hub_worker_into_postgres(
    protocol: str,
    kafka: str,
    redis_url: str,
    fresh_database: str,
    pg_fresh: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    site = f"site-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    worker = HubWorkerProcess(tmp_path / "hub", kafka, redis_url, database_url=fresh_database)
    await position_group(kafka, worker.group, await end_offsets(kafka))
    simulator = IndustrialSimulator(protocol, tmp_path).start()
    gateway = GatewayProcess(
        tmp_path / "edge",
        {
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_CONNECTORS_FILE": str(simulator.connectors_file),
        },
    )
    devices = sorted(f"{prefix}-01" for prefix in DEVICE_ID_PREFIX.values())
    try:
        worker.start()
        await asyncio.to_thread(gateway.start)

        async def every_metric_stored() -> bool:
            rows = await pg_fresh.fetch(
                "SELECT DISTINCT device_id, metric FROM readings WHERE device_id = ANY($1)",
                devices,
            )
            wanted = sum(len(METRICS[t]) for t in ALL_TYPES)
            return len(rows) == wanted

        await async_wait_until(
            every_metric_stored, 120, f"every metric of the five devices in PostgreSQL ({protocol})"
        )
        assert gateway.terminate() == 0
        assert await worker.stop() == 0
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.kill()
        worker.cleanup()
        simulator.stop()
    rows = await pg_fresh.fetch(
        "SELECT device_id, metric, value FROM readings WHERE device_id = 'press-01' "
        "AND metric = 'ram_pressure_bar'"
    )
    assert rows
    assert all(0 <= r["value"] <= 250 for r in rows)
    assert worker.errors() == []
