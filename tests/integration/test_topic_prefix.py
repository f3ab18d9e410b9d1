"""A gateway and a hub worker with one topic prefix (EDGE_KAFKA_TOPIC_PREFIX,
HUB_KAFKA_TOPIC_PREFIX) talk over the prefixed topics only: readings, statuses, dead letters,
heartbeats, alerts and the hub's dead letters, none of them on the unprefixed topics a demo
on the same Kafka reads."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from hub.settings import HUB_DLQ_TOPIC
from protocol import topics
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess, position_group_at_end, produce
from tests.support.kafka import KafkaTail, Record, ensure_topics, partitions_of
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

UNPREFIXED = (*topics.KAFKA_TOPICS, HUB_DLQ_TOPIC)


async def mark_every_partition(kafka: str, names: tuple[str, ...], marker: bytes) -> int:
    """One marker record per partition of each topic: once the tail has them all, it has
    everything produced to those partitions before them."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    sent = 0
    try:
        for name in names:
            for tp in await partitions_of(kafka, name):
                await producer.send_and_wait(name, marker, partition=tp.partition)
                sent += 1
    finally:
        await producer.stop()
    return sent


def mentions(records: list[Record], *ids: str) -> list[Record]:
    return [r for r in records if any(i.encode() in (r.value or b"") + (r.key or b"") for i in ids)]


async def test_a_prefixed_gateway_and_hub_use_only_prefixed_topics(
    tmp_path: Path, kafka: str, redis_url: str, blank_database: str
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    names = topics.KafkaTopics(prefix)
    hub_dlq = topics.topic_name(HUB_DLQ_TOPIC, prefix)
    await ensure_topics(kafka, [*names.all(), hub_dlq, *UNPREFIXED])
    tag = uuid.uuid4().hex[:8]
    site, gateway_id, device = f"site-{tag}", f"gw-{tag}", f"cnc-{tag}"

    worker = HubWorkerProcess(
        tmp_path / "worker",
        kafka,
        redis_url,
        database_url=blank_database,
        env={"HUB_KAFKA_TOPIC_PREFIX": prefix},
    )
    await position_group_at_end(kafka, worker.group, names=names)
    mqtt_port = free_port()
    gateway = GatewayProcess(
        tmp_path / "gateway",
        {
            "EDGE_GATEWAY_ID": gateway_id,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": kafka,
            "EDGE_KAFKA_TOPIC_PREFIX": prefix,
            "EDGE_MQTT_PORT": str(mqtt_port),
            "EDGE_MQTT_ALLOW_ANONYMOUS": "true",  # the test's publisher has no login
        },
    )
    async with (
        KafkaTail(kafka, UNPREFIXED) as plain,
        KafkaTail(kafka, [*names.all(), hub_dlq]) as prefixed,
    ):
        worker.start()
        await asyncio.to_thread(gateway.start)
        publisher = Publisher("127.0.0.1", mqtt_port)
        try:
            publisher.wait_connected()
            telemetry = f"plant/{site}/{device}/telemetry"
            hot = {"type": "cnc_spindle", "metrics": {"running": True, "spindle_temp_c": 95.0}}
            publisher.publish(telemetry, hot)
            publisher.publish(telemetry, b"not json")
            publisher.publish(f"plant/{site}/{device}/status", {"state": "online"})
            await asyncio.to_thread(publisher.wait_acked)

            def complete(records: list[Record]) -> bool:
                on = {r.topic for r in mentions(records, device, gateway_id)}
                return on >= set(names.all())

            records = await prefixed.collect_until(
                complete, 90, "readings, statuses, dead letters, heartbeats and alerts"
            )
            # The hub's own dead-letter topic, under the prefix too.
            bad = (gateway_id.encode(), b"not edge metrics " + tag.encode())
            await produce(kafka, [bad], names.edge_metrics)
            await prefixed.collect_until(
                lambda recs: bool(mentions([r for r in recs if r.topic == hub_dlq], tag)),
                60,
                "the hub's dead letter",
            )
            conn = await asyncpg.connect(blank_database)
            try:
                await async_wait_until(
                    lambda: conn.fetchval("SELECT 1 FROM readings WHERE device_id = $1", device),
                    60,
                    "the reading in PostgreSQL",
                )
            finally:
                await conn.close()
        finally:
            publisher.close()
            assert await asyncio.to_thread(gateway.terminate) == 0
            assert await worker.stop() == 0
        marker = f"marker-{tag}".encode()
        expected = await mark_every_partition(kafka, UNPREFIXED, marker)
        unprefixed = await plain.collect_until(
            lambda recs: sum(r.value == marker for r in recs) >= expected,
            60,
            "the markers on every unprefixed partition",
        )
    assert {r.topic for r in mentions(records, device)} >= {
        names.telemetry,
        names.telemetry_dlq,
        names.device_status,
        names.alerts,
    }
    assert mentions(unprefixed, device, gateway_id, site, tag) == [
        r for r in unprefixed if r.value == marker
    ]
    worker.cleanup()
