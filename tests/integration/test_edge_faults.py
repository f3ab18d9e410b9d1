"""Faults the gateway must ride out without losing a reading: Kafka away, SIGKILL, a full buffer."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from protocol import DecodeError, NormalisedReading, decode_telemetry_value, topics
from tests.support.gateway import GatewayProcess
from tests.support.kafka import KafkaTail, Record
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.services import run_services
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = int(time.time() * 1000)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def message(site: str, device: str, seq: int) -> tuple[str, dict[str, object]]:
    # The metric values encode (device, seq) so the content can be checked end to end.
    return f"plant/{site}/{device}/telemetry", {
        "ts": T0 + seq,
        "seq": seq,
        "type": "test_rig",
        "metrics": {"value": seq * 0.5, "device_no": float(device[-1]), "ok": seq % 2 == 0},
    }


def interleaved(
    site: str, devices: list[str], per_device: int
) -> list[tuple[str, dict[str, object]]]:
    return [message(site, d, seq) for seq in range(per_device) for d in devices]


def first_occurrences(records: list[Record], site: str) -> dict[str, list[NormalisedReading]]:
    seen: set[tuple[str, int | None]] = set()
    out: dict[str, list[NormalisedReading]] = defaultdict(list)
    for r in records:
        if r.topic != topics.TELEMETRY:
            continue
        try:
            readings = decode_telemetry_value(r.value)
        except DecodeError:
            continue  # another test's deliberately bad record on the shared topic
        for reading in readings:
            if reading.site != site or (reading.device_id, reading.seq) in seen:
                continue
            seen.add((reading.device_id, reading.seq))
            out[reading.device_id].append(reading)
    return out


def count_site(records: list[Record], site: str) -> int:
    return sum(len(v) for v in first_occurrences(records, site).values())


def assert_intact(
    readings: dict[str, list[NormalisedReading]],
    devices: list[str],
    n: int,
    *,
    ordered: bool = True,
) -> None:
    assert sorted(readings) == sorted(devices)
    for device, got in readings.items():
        seqs = [r.seq if r.seq is not None else -1 for r in got]
        if not ordered:
            seqs.sort()
        assert seqs == list(range(n)), f"{device}: missing or out of order"
        for r in got:
            assert r.seq is not None
            assert r.ts == T0 + r.seq
            assert r.metrics == {
                "value": r.seq * 0.5,
                "device_no": float(device[-1]),
                "ok": r.seq % 2 == 0,
            }


def publish_in_background(
    pub: Publisher, msgs: list[tuple[str, dict[str, object]]], rate_hz: float
) -> threading.Thread:
    thread = threading.Thread(target=pub.publish_all, args=(msgs, rate_hz), daemon=True)
    thread.start()
    return thread


async def test_kafka_outage_mid_stream_loses_nothing(
    kafka: str, mosquitto: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mosquitto
    site, gateway_id = unique("site"), unique("gw")
    devices = ["dev-1", "dev-2", "dev-3"]
    per_device = 600
    msgs = interleaved(site, devices, per_device)
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_URL": f"mqtt://{host}:{port}",
            "EDGE_KAFKA_REQUEST_TIMEOUT_MS": "5000",
            "EDGE_FORWARD_BACKOFF_MAX_S": "2",
        },
    )
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail:
        await asyncio.to_thread(gw.start)
        pub = Publisher(host, port)
        try:
            pub.wait_connected()
            sender = publish_in_background(pub, msgs, rate_hz=120)
            await tail.collect_until(lambda r: count_site(r, site) >= 300, 60, "first readings")
            await asyncio.to_thread(run_services, "stop", "kafka")
            # Readings keep arriving and pile up in the buffer while Kafka is away.
            await asyncio.to_thread(
                wait_until, lambda: not gw.status()["kafka"]["connected"], 60, "kafka seen down"
            )
            depth_down = await asyncio.to_thread(
                wait_until,
                lambda: gw.status()["buffer"]["depth"] >= 300 and gw.status()["buffer"]["depth"],
                60,
                "buffer filling during the outage",
            )
            await asyncio.to_thread(run_services, "start", "kafka")
            await asyncio.to_thread(sender.join, 120)
            await asyncio.to_thread(pub.wait_acked)
            records = await tail.collect_until(
                lambda r: count_site(r, site) >= len(msgs), 180, "every reading after the outage"
            )
            status = await asyncio.to_thread(
                wait_until,
                lambda: gw.status()["buffer"]["depth"] == 0 and gw.status(),
                60,
                "buffer drained",
            )
        finally:
            pub.close()
            assert await asyncio.to_thread(gw.terminate) == 0
    assert depth_down >= 300
    assert_intact(first_occurrences(records, site), devices, per_device)
    assert status["buffer"]["dropped_total"] == 0
    assert status["counters"]["kafka_errors_total"] >= 1
    assert status["kafka"]["connected"] is True


DEVICES = ["dev-1", "dev-2", "dev-3"]
PER_DEVICE = 1000


async def kill_mid_stream(
    kafka: str, tmp_path: Path, env: dict[str, str], mqtt: tuple[str, int]
) -> dict[str, list[NormalisedReading]]:
    """Three devices publish 1,000 readings each at 600/s to `mqtt`; the gateway is SIGKILLed
    mid-stream and started again on the same buffer. Returns what reached Kafka, per device."""
    site = unique("site")
    msgs = interleaved(site, DEVICES, PER_DEVICE)
    env = {"EDGE_GATEWAY_ID": unique("gw"), "EDGE_KAFKA_BOOTSTRAP": kafka, **env}
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail:
        gw = GatewayProcess(tmp_path, env)
        await asyncio.to_thread(gw.start)
        pub = Publisher(*mqtt)
        try:
            pub.wait_connected()
            sender = publish_in_background(pub, msgs, rate_hz=600)
            await asyncio.to_thread(
                wait_until,
                lambda: gw.status()["counters"]["received_total"] >= 800,
                60,
                "gateway mid-stream",
            )
            await asyncio.to_thread(gw.kill)
            gw = GatewayProcess(tmp_path, {**env, "EDGE_HTTP_PORT": str(free_port())})
            await asyncio.to_thread(gw.start)
            await asyncio.to_thread(sender.join, 120)
            await asyncio.to_thread(pub.wait_acked, 120)
            records = await tail.collect_until(
                lambda r: count_site(r, site) >= len(msgs), 120, "every acknowledged reading"
            )
        finally:
            pub.close()
            await asyncio.to_thread(gw.terminate)
    return first_occurrences(records, site)


async def test_sigkill_mid_stream_loses_nothing_acknowledged(
    kafka: str, mosquitto: tuple[str, int], tmp_path: Path
) -> None:
    """Mosquitto queues the bridge's persistent session while the gateway is down."""
    host, port = mosquitto
    env = {"EDGE_MQTT_URL": f"mqtt://{host}:{port}"}
    readings = await kill_mid_stream(kafka, tmp_path, env, mosquitto)
    assert_intact(readings, DEVICES, PER_DEVICE)


async def test_sigkill_with_the_embedded_broker_loses_nothing_acknowledged(
    kafka: str, tmp_path: Path
) -> None:
    """The embedded broker acknowledges a publish only once it is in the buffer, so a device
    that sends again what was not acknowledged loses nothing to a SIGKILL of the gateway."""
    mqtt_port = free_port()
    env = {
        "EDGE_MQTT_PORT": str(mqtt_port),
        "EDGE_MQTT_BIND": "127.0.0.1",
        "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
    }
    readings = await kill_mid_stream(kafka, tmp_path, env, ("127.0.0.1", mqtt_port))
    # Unordered: on reconnect paho sends new messages before the unacknowledged ones it resends
    # (behind Mosquitto, which stays up, the publisher never reconnects).
    assert_intact(readings, DEVICES, PER_DEVICE, ordered=False)


async def test_full_buffer_drops_the_oldest_and_counts_them(kafka: str, tmp_path: Path) -> None:
    site, gateway_id = unique("site"), unique("gw")
    mqtt_port = free_port()
    total = 400
    env = {
        "EDGE_GATEWAY_ID": gateway_id,
        "EDGE_MQTT_PORT": str(mqtt_port),
        "EDGE_MQTT_ALLOW_ANONYMOUS": "true",  # the test's publisher has no login
        "EDGE_BUFFER_MAX_BYTES": "40000",
        # Nothing listens there: every record stays in the buffer.
        "EDGE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
    }
    gw = GatewayProcess(tmp_path, env)
    await asyncio.to_thread(gw.start)
    pub = Publisher("127.0.0.1", mqtt_port)
    try:
        pub.wait_connected()
        pub.publish_all(interleaved(site, ["dev-1"], total))
        await asyncio.to_thread(pub.wait_acked)
        status = await asyncio.to_thread(
            wait_until,
            lambda: gw.status()["counters"]["received_total"] >= total and gw.status(),
            30,
            "all received",
        )
        _, metrics = await asyncio.to_thread(gw.get, "/metrics")
    finally:
        pub.close()
        assert await asyncio.to_thread(gw.terminate) == 0
    buffer = status["buffer"]
    assert buffer["bytes"] <= 40000
    assert buffer["dropped_total"] > 0
    assert buffer["depth"] + buffer["dropped_total"] == total
    assert f"edge_dropped_total {buffer['dropped_total']}" in metrics
    assert "buffer_full_dropped_oldest" in gw.log()

    # The survivors are the newest readings, and they still reach Kafka once it is there.
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail:
        gw = GatewayProcess(
            tmp_path, {**env, "EDGE_KAFKA_BOOTSTRAP": kafka, "EDGE_HTTP_PORT": str(free_port())}
        )
        await asyncio.to_thread(gw.start)
        try:
            records = await tail.collect_until(
                lambda r: count_site(r, site) >= buffer["depth"], 60, "the surviving readings"
            )
        finally:
            await asyncio.to_thread(gw.terminate)
    seqs = [r.seq for r in first_occurrences(records, site)["dev-1"]]
    assert seqs == list(range(total - buffer["depth"], total))
