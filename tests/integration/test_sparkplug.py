"""Another project's Sparkplug B edge node (pysparkplug) -> the gateway's Sparkplug host, on the
embedded broker and through Mosquitto -> real Kafka; and once on to PostgreSQL rows."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from hub.settings import HUB_DLQ_TOPIC
from protocol import DeviceStatus, topics
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, end_offsets, position_group
from tests.support.kafka import KafkaTail, Record, ensure_topics, telemetry_readings
from tests.support.mqtt import Publisher
from tests.support.process import ROOT, free_port
from tests.support.sparkplug import PeerNode, Watcher
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration

NODE, DEVICE = "press1", "press1.motor1"


def statuses(records: list[Record], site: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in records:
        if r.topic == topics.DEVICE_STATUS and f'"site":"{site}"'.encode() in r.value:
            status = DeviceStatus.model_validate_json(r.value)
            out.append((status.device_id, status.state))
    return out


def values(records: list[Record], site: str, device: str, metric: str) -> list[float | bool]:
    return [
        r.metrics[metric]
        for r in telemetry_readings(records, site)
        if r.device_id == device and metric in r.metrics
    ]


def gateway(tmp_path: Path, kafka: str, site: str, mqtt_url: str | None) -> GatewayProcess:
    env = {
        "EDGE_SITE": site,
        "EDGE_KAFKA_BOOTSTRAP": kafka,
        "EDGE_SPARKPLUG_ENABLED": "true",
        "EDGE_SPARKPLUG_HOST_ID": f"host-{site}",
        "EDGE_SPARKPLUG_REORDER_TIMEOUT_MS": "300",
    }
    if mqtt_url:
        env["EDGE_MQTT_URL"] = mqtt_url
    else:
        env["EDGE_MQTT_PORT"] = str(free_port())
        env["EDGE_MQTT_ALLOW_ANONYMOUS"] = "true"
    return GatewayProcess(tmp_path, env)


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
async def test_pysparkplug_edge_node_through_the_gateway_to_kafka(
    broker: str, kafka: str, mosquitto: tuple[str, int], tmp_path: Path
) -> None:
    site = f"sp-{uuid.uuid4().hex[:8]}"
    if broker == "mosquitto":
        host, port = mosquitto
        gw = gateway(tmp_path, kafka, site, f"mqtt://{host}:{port}")
    else:
        gw = gateway(tmp_path, kafka, site, None)
        host, port = "127.0.0.1", int(gw.env["EDGE_MQTT_PORT"])
    ncmd = f"spBv1.0/{site}/NCMD/{NODE}"
    state = f"spBv1.0/STATE/host-{site}"
    async with KafkaTail(
        kafka, [topics.TELEMETRY, topics.DEVICE_STATUS, topics.TELEMETRY_DLQ]
    ) as tail:
        await asyncio.to_thread(gw.start)
        watcher = Watcher(host, port, [ncmd, state])
        peer = PeerNode(host, port, site, NODE)
        publisher = Publisher(host, port)

        async def until(done: Callable[[list[Record]], bool], what: str) -> list[Record]:
            return await tail.collect_until(done, 60, what)

        try:
            # The host's retained STATE, per Sparkplug 3.0.
            wait_until(lambda: watcher.on(state), 30, "the host's STATE")
            assert json.loads(watcher.on(state)[0])["online"] is True

            peer.do("connect")
            peer.do("data 5")
            await until(
                lambda rs: (
                    len(values(rs, site, DEVICE, "motor_1_temperature")) >= 6
                    and len(values(rs, site, NODE, "hydraulic_pressure_bar")) >= 6
                ),
                "births and five rounds of data",
            )
            # A corrupt payload is dead-lettered; the node's data goes on flowing.
            publisher.wait_connected()
            publisher.publish(f"spBv1.0/{site}/NDATA/{NODE}", b"\x12\x09\x0a\x07trunc")
            publisher.wait_acked()
            peer.do("data 3")
            await until(
                lambda rs: (
                    len(values(rs, site, DEVICE, "motor_1_temperature")) >= 9
                    and any(r.topic == topics.TELEMETRY_DLQ and r.key == NODE.encode() for r in rs)
                ),
                "data after the corrupt payload, and its dead letter",
            )
            # A seq gap: held for the reorder timeout, then applied and a rebirth requested.
            peer.do("gap")
            wait_until(lambda: watcher.on(ncmd), 30, "a rebirth request (NCMD)")
            await until(
                lambda rs: len(values(rs, site, DEVICE, "motor_1_temperature")) >= 10,
                "the message after the gap",
            )
            peer.do("ddeath")
            await until(lambda rs: (DEVICE, "offline") in statuses(rs, site), "DDEATH")
            peer.do("crash")  # the broker publishes the NDEATH will
            await until(lambda rs: (NODE, "offline") in statuses(rs, site), "NDEATH will")
            status = gw.status()
        finally:
            peer.close()
            publisher.close()
            watcher.close()
            assert await asyncio.to_thread(gw.terminate) == 0

    records = tail.records
    assert values(records, site, DEVICE, "motor_1_temperature") == [40.0 + i for i in range(10)]
    assert values(records, site, DEVICE, "speed_rpm") == [-10.0 - i for i in range(10)]
    assert set(values(records, site, NODE, "running")) == {True, False}
    # Each device's statuses in order (one key, one partition; devices interleave freely).
    for device in (NODE, DEVICE):
        states = [state for d, state in statuses(records, site) if d == device]
        assert states == ["online", "offline"], device
    rebirth = pb.Payload.FromString(watcher.on(ncmd)[0])
    assert [(m.name, m.boolean_value) for m in rebirth.metrics] == [("Node Control/Rebirth", True)]
    (letter,) = [r for r in records if r.topic == topics.TELEMETRY_DLQ and r.key == NODE.encode()]
    assert dict(letter.headers)["error"].startswith(b"sparkplug_bad_payload")
    sparkplug = status["sparkplug"]
    assert sparkplug["by_reason"]["seq_gap"] == 1
    assert sparkplug["by_reason"]["string"] >= 1  # the node's Label
    assert sparkplug["rebirths_requested_total"] >= 1
    assert sparkplug["nodes_online"] == 0
    assert status["counters"]["dead_lettered_by_reason"] == {"sparkplug_bad_payload": 1}


async def test_sparkplug_readings_reach_postgres_through_the_hub(
    kafka: str, redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    site = f"sp-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [HUB_DLQ_TOPIC])
    worker = HubWorkerProcess(tmp_path / "hub", kafka, redis_url, database_url=fresh_database)
    await position_group(kafka, worker.group, await end_offsets(kafka))
    gw = gateway(tmp_path / "edge", kafka, site, None)
    port = int(gw.env["EDGE_MQTT_PORT"])
    pg = await asyncpg.connect(fresh_database)
    peer = None
    try:
        worker.start()
        await asyncio.to_thread(gw.start)
        peer = PeerNode("127.0.0.1", port, site, NODE)
        peer.do("connect")
        peer.do("data 4")

        async def stored() -> bool:
            device = await pg.fetchval(
                "SELECT count(*) FROM readings WHERE device_id = $1 AND metric = $2",
                DEVICE,
                "motor_1_temperature",
            )
            node = await pg.fetchval("SELECT count(*) FROM readings WHERE device_id = $1", NODE)
            # birth and four rounds; the node's: pressure and running, each (Label is a string)
            return bool(device == 5 and node == 5 * 2)

        await async_wait_until(stored, 120, f"five rows in PostgreSQL ({worker.log_path})")
        rows = await pg.fetch(
            "SELECT value FROM readings WHERE device_id = $1 AND metric = 'speed_rpm' ORDER BY ts",
            DEVICE,
        )
        assert [r["value"] for r in rows] == [-10.0, -11.0, -12.0, -13.0, -14.0]
        node_rows = await pg.fetchval("SELECT count(*) FROM readings WHERE device_id = $1", NODE)
        assert node_rows >= 5 * 2  # pressure and running, birth and four rounds
    finally:
        if peer is not None:
            peer.close()
        await pg.close()
        assert await asyncio.to_thread(gw.terminate) == 0
        await worker.stop()
        worker.cleanup()


async def test_simulate_protocol_sparkplug_reaches_kafka(kafka: str, tmp_path: Path) -> None:
    site = f"sp-{uuid.uuid4().hex[:8]}"
    gw = gateway(tmp_path, kafka, site, None)
    per_device = 20
    async with KafkaTail(kafka, [topics.TELEMETRY, topics.DEVICE_STATUS]) as tail:
        await asyncio.to_thread(gw.start)
        try:
            sim = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "edge_gateway.cli",
                    "simulate",
                    "--protocol",
                    "sparkplug",
                    "--mqtt-url",
                    f"mqtt://127.0.0.1:{gw.env['EDGE_MQTT_PORT']}",
                    "--site",
                    site,
                    "--rate",
                    "50",
                    "--max-messages",
                    str(per_device),
                    "--anomaly-probability",
                    "0",
                    "--quiet",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert sim.returncode == 0, sim.stderr
            # births (one reading each) and the data; the clean stop's deaths
            records = await tail.collect_until(
                lambda rs: (
                    len(telemetry_readings(rs, site)) >= 5 * (per_device + 1) + 1  # and the node's
                    and sum(state == "offline" for _, state in statuses(rs, site)) == 6
                ),
                60,
                "every simulated device's readings and deaths",
            )
            status = gw.status()
        finally:
            assert await asyncio.to_thread(gw.terminate) == 0
    ours = telemetry_readings(records, site)
    node = [r.metrics for r in ours if r.device_id == "simulator"]
    assert node == [{"devices": 5.0}]  # the node's own birth metric
    ours = [r for r in ours if r.device_id != "simulator"]
    devices = {r.device_id for r in ours}
    assert len(devices) == 5
    assert all(d.startswith("simulator.") for d in devices)
    counts = {d: sum(r.device_id == d for r in ours) for d in devices}
    assert set(counts.values()) == {per_device + 1}
    assert "spindle_temp_c" in next(r.metrics for r in ours if "cnc" in r.device_id)
    assert status["sparkplug"]["by_reason"].get("unknown_alias", 0) == 0
    assert status["counters"]["dead_lettered_total"] == 0
