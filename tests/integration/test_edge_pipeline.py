"""Simulators and real MQTT brokers -> gateway -> durable buffer -> real Kafka, read back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from protocol import DeviceStatus, EdgeMetrics, NormalisedReading, decode_telemetry_value, topics
from tests.support.gateway import GatewayProcess
from tests.support.kafka import KafkaTail, Record
from tests.support.process import ROOT, free_port

pytestmark = pytest.mark.integration

TYPES = ("cnc_spindle", "hydraulic_press", "conveyor", "air_compressor", "cleanroom_env")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def readings_of(records: list[Record], site: str) -> list[NormalisedReading]:
    out = []
    for r in records:
        if r.topic != topics.TELEMETRY:
            continue
        for reading in decode_telemetry_value(r.value):
            if reading.site == site:
                assert r.key == reading.device_id.encode()
                out.append(reading)
    return out


def by_device(readings: list[NormalisedReading]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for reading in readings:
        assert reading.seq is not None
        seqs[reading.device_id].append(reading.seq)
    return seqs


async def test_simulators_via_embedded_broker_reach_kafka(kafka: str, tmp_path: Path) -> None:
    site, gateway_id = unique("site"), unique("gw")
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_SIMULATORS": "all",
            "EDGE_SIMULATOR_RATE_HZ": "20",
            "EDGE_SIMULATOR_ANOMALY_PROBABILITY": "0",
        },
    )
    wanted = 40

    def complete(records: list[Record]) -> bool:
        readings = readings_of(records, site)
        types: dict[str | None, int] = defaultdict(int)
        for r in readings:
            types[r.type] += 1
        statuses = [r for r in records if r.topic == topics.DEVICE_STATUS]
        metrics = [
            r for r in records if r.topic == topics.EDGE_METRICS and r.key == gateway_id.encode()
        ]
        return all(types[t] >= wanted for t in TYPES) and len(statuses) >= 5 and bool(metrics)

    async with KafkaTail(
        kafka, [topics.TELEMETRY, topics.DEVICE_STATUS, topics.EDGE_METRICS]
    ) as tail:
        await asyncio.to_thread(gw.start)
        try:
            records = await tail.collect_until(complete, 90, "readings from all five simulators")
            status = gw.status()
        finally:
            assert await asyncio.to_thread(gw.terminate) == 0

    readings = readings_of(records, site)
    assert {r.type for r in readings} == set(TYPES)
    assert all(r.gateway_id == gateway_id for r in readings)
    for device, seqs in by_device(readings).items():
        assert seqs == sorted(seqs), f"{device} out of order"
        assert len(set(seqs)) == len(seqs), f"{device} duplicated"
    # Only this test's own: other tests put hostile statuses on the same topic.
    online = [
        DeviceStatus.model_validate_json(r.value)
        for r in records
        if r.topic == topics.DEVICE_STATUS and f'"site":"{site}"'.encode() in r.value
    ]
    assert {s.state for s in online} >= {"online"}
    heartbeat = next(
        EdgeMetrics.model_validate_json(r.value)
        for r in records
        if r.topic == topics.EDGE_METRICS and r.key == gateway_id.encode()
    )
    assert heartbeat.gateway_id == gateway_id
    assert status["counters"]["dead_lettered_total"] == 0
    assert status["mqtt"]["mode"] == "embedded"
    assert "gateway_stopped" in gw.log()


async def test_simulate_command_via_mosquitto_delivers_every_reading_in_order(
    kafka: str, mosquitto: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mosquitto
    site, gateway_id = unique("site"), unique("gw")
    per_device = 30
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_URL": f"mqtt://{host}:{port}",
        },
    )
    async with KafkaTail(kafka, [topics.TELEMETRY]) as tail:
        await asyncio.to_thread(gw.start)
        try:
            sim = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "edge_gateway.cli",
                    "simulate",
                    "--mqtt-url",
                    f"mqtt://{host}:{port}",
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
            records = await tail.collect_until(
                lambda recs: len(readings_of(recs, site)) >= 5 * per_device,
                60,
                f"{5 * per_device} readings",
            )
        finally:
            assert await asyncio.to_thread(gw.terminate) == 0
    seqs = by_device(readings_of(records, site))
    assert len(seqs) == 5
    for device, got in seqs.items():
        assert got == list(range(got[0], got[0] + per_device)), device


def bad_inputs(site: str) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) for each kind of bad input the issue names."""
    t = f"plant/{site}/bad-01/telemetry"
    status = f"plant/{site}/bad-01/status"
    ok = {"ts": None, "metrics": {"temp_c": 1.0}}
    year_10000 = b'"9999-12-31T23:59:59-23:59"'  # valid RFC 3339, past year 9999 in UTC
    return [
        # Values and timestamps that once crashed the hub (sums overflowing, dates unholdable).
        (t, b'{"metrics": {"temp_c": -1e308}}', "value_out_of_range"),
        (t, b'{"metrics": {"temp_c": 1e308}}', "value_out_of_range"),
        (t, b'{"ts": ' + year_10000 + b', "metrics": {"temp_c": 1}}', "ts_out_of_range"),
        (status, b'{"state": "online", "ts": ' + year_10000 + b"}", "ts_out_of_range"),
        (status, b'{"state": "online", "ts": 253402300799999}', "ts_out_of_range"),
        (t, b"this is not json", "invalid_json"),
        (t, b'{"metrics": {"temp_c": "\xff\xfe"}}', "invalid_utf8"),
        (t, b'{"metrics": [1, 2, 3]}', "wrong_shape"),
        (t, b'{"metrics": {"temp_c": NaN}}', "non_finite_number"),
        (t, b'{"metrics": {"temp_c": Infinity}}', "non_finite_number"),
        (t, b'{"metrics": {"Bad-Name": 1}}', "bad_metric_name"),
        (t, json.dumps({"metrics": {f"m{i}": i for i in range(300)}}).encode(), "too_many_metrics"),
        (t, b'{"metrics": {"temp_c": 1}, "pad": "' + b"x" * 1_000_000 + b'"}', "payload_too_large"),
        (f"plant/{site}/bad device!/telemetry", json.dumps(ok).encode(), "bad_topic"),
        (t, b'{"ts": 946684800000, "metrics": {"temp_c": 1}}', "ts_out_of_range"),
        (t, b'{"seq": 7, "metrics": {"temp_c": 1}}', "duplicate_seq"),  # after the same seq 7
    ]


async def test_bad_input_is_dead_lettered_counted_and_harmless(kafka: str, tmp_path: Path) -> None:
    from tests.support.mqtt import Publisher

    site, gateway_id = unique("site"), unique("gw")
    mqtt_port = free_port()
    gw = GatewayProcess(
        tmp_path,
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_MQTT_PORT": str(mqtt_port),
            "EDGE_MQTT_ALLOW_ANONYMOUS": "true",  # the test's publisher has no login
        },
    )
    cases = bad_inputs(site)
    async with KafkaTail(kafka, [topics.TELEMETRY, topics.TELEMETRY_DLQ]) as tail:
        await asyncio.to_thread(gw.start)
        pub = Publisher("127.0.0.1", mqtt_port)
        try:
            pub.wait_connected()
            good = f"plant/{site}/good-01/telemetry"
            pub.publish(f"plant/{site}/bad-01/telemetry", b'{"seq": 7, "metrics": {"temp_c": 1}}')
            for i, (topic, payload, _) in enumerate(cases):
                pub.publish(topic, payload)
                pub.publish(good, {"seq": i, "metrics": {"temp_c": 20.0 + i}})
            await asyncio.to_thread(pub.wait_acked)

            def done(recs: list[Record]) -> bool:
                dlq = [
                    r
                    for r in recs
                    if r.topic == topics.TELEMETRY_DLQ
                    and dict(r.headers).get("gateway_id") == gateway_id.encode()
                ]
                return len(dlq) >= len(cases) and len(readings_of(recs, site)) >= len(cases) + 1

            records = await tail.collect_until(done, 60, "dead letters and good readings")
            status = gw.status()
        finally:
            pub.close()
            assert await asyncio.to_thread(gw.terminate) == 0

    dlq = [
        r
        for r in records
        if r.topic == topics.TELEMETRY_DLQ
        and dict(r.headers).get("gateway_id") == gateway_id.encode()
    ]
    got = sorted(dict(r.headers)["error"].decode().split(":")[0] for r in dlq)
    assert got == sorted(reason for _, _, reason in cases)
    for record in dlq:
        headers = dict(record.headers)
        assert set(headers) >= {"error", "mqtt_topic", "gateway_id", "received_ts"}
        assert headers["mqtt_topic"].decode().startswith(f"plant/{site}/")
    not_json = next(r for r in dlq if dict(r.headers)["error"].startswith(b"invalid_json"))
    assert not_json.value == b"this is not json"
    assert not_json.key == b"bad-01"
    good_seqs = by_device(readings_of(records, site))
    assert good_seqs["good-01"] == list(range(len(cases)))
    assert good_seqs["bad-01"] == [7]
    assert status["counters"]["dead_lettered_total"] == len(cases)
    assert sum(status["counters"]["dead_lettered_by_reason"].values()) == len(cases)
    assert status["counters"]["kafka_rejected_total"] == 0
