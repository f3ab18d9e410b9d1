"""The edge and the hub against a Kafka configured as one across a network is: SASL_SSL with
SCRAM and PLAIN users, and mutual TLS, with certificates made by the test. Readings flow; a wrong
password, an untrusted broker certificate and an expired client certificate each give one clear
log line and a status field naming the cause, while the gateway keeps everything in its buffer
and forwards it once restarted with the right settings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from protocol import decode_telemetry_value, topics
from protocol.codec import encode
from tests.support.certs import CertAuthority
from tests.support.gateway import GatewayProcess
from tests.support.hub import HubWorkerProcess
from tests.support.kafka import KafkaTail, Record
from tests.support.mqtt import Publisher
from tests.support.process import free_port
from tests.support.readings import make_reading
from tests.support.secure_kafka import HUB_USER, PLAIN_USER, USER, SecureKafka, secure_kafka
from tests.support.waiting import async_wait_until, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    with secure_kafka(tmp_path_factory.mktemp("secure-kafka")) as broker:
        yield broker


def sasl_env(secure: SecureKafka, mechanism: str = "SCRAM-SHA-512", **over: str) -> dict[str, str]:
    user = PLAIN_USER if mechanism == "PLAIN" else USER
    return {
        "EDGE_KAFKA_BOOTSTRAP": secure.sasl_ssl,
        "EDGE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EDGE_KAFKA_SASL_MECHANISM": mechanism,
        "EDGE_KAFKA_SASL_USERNAME": user,
        "EDGE_KAFKA_SASL_PASSWORD": secure.passwords[user],
        "EDGE_KAFKA_SSL_CAFILE": str(secure.ca.cert),
        **over,
    }


def mtls_env(secure: SecureKafka, cert: Path, key: Path, **over: str) -> dict[str, str]:
    return {
        "EDGE_KAFKA_BOOTSTRAP": secure.mtls,
        "EDGE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "EDGE_KAFKA_SSL_CAFILE": str(secure.ca.cert),
        "EDGE_KAFKA_SSL_CERTFILE": str(cert),
        "EDGE_KAFKA_SSL_KEYFILE": str(key),
        **over,
    }


class Edge:
    """A gateway with its embedded broker, a site of its own and a publisher."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.site = f"site-{uuid.uuid4().hex[:8]}"
        self.mqtt_port = free_port()
        self.workdir = workdir
        self.base = {
            "EDGE_SITE": self.site,
            "EDGE_MQTT_PORT": str(self.mqtt_port),
            "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
            "EDGE_KAFKA_REQUEST_TIMEOUT_MS": "3000",
            "EDGE_FORWARD_BACKOFF_MAX_S": "1",
        }
        self.gateway = GatewayProcess(workdir, {**self.base, **env})

    def restart(self, env: dict[str, str]) -> None:
        """Stop, then start again on the same buffer with other settings."""
        assert self.gateway.terminate() == 0
        self.gateway = GatewayProcess(
            self.workdir, {**self.base, **env, "EDGE_HTTP_PORT": str(free_port())}
        )
        self.gateway.start()

    def publish(self, count: int) -> None:
        publisher = Publisher("127.0.0.1", self.mqtt_port)
        try:
            publisher.wait_connected()
            publisher.publish_all(
                [
                    (
                        f"plant/{self.site}/dev-1/telemetry",
                        {"seq": seq, "metrics": {"value": float(seq)}},
                    )
                    for seq in range(count)
                ]
            )
            publisher.wait_acked()
        finally:
            publisher.close()

    def kafka_status(self) -> dict[str, Any]:
        kafka: dict[str, Any] = self.gateway.status()["kafka"]
        return kafka


def seqs_of(records: list[Record], site: str) -> set[int]:
    found = set()
    for r in records:
        for reading in decode_telemetry_value(r.value):
            if reading.site == site and reading.seq is not None:
                found.add(reading.seq)
    return found


async def forwarded(secure: SecureKafka, edge: Edge, count: int) -> None:
    """Until the secure broker holds seq 0..count-1 of the edge's site."""
    async with KafkaTail(secure.plaintext, [topics.TELEMETRY], from_beginning=True) as tail:
        await tail.collect_until(
            lambda records: seqs_of(records, edge.site) >= set(range(count)),
            90,
            f"{count} readings of {edge.site} in the secure Kafka",
        )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
async def test_the_edge_forwards_over_sasl_ssl(
    secure: SecureKafka, tmp_path: Path, mechanism: str
) -> None:
    edge = Edge(tmp_path, sasl_env(secure, mechanism))
    await asyncio.to_thread(edge.gateway.start)
    try:
        await asyncio.to_thread(edge.publish, 50)
        await forwarded(secure, edge, 50)
        status = await asyncio.to_thread(edge.kafka_status)
        assert status["connected"]
        assert status["failure"] is None
        assert "event=kafka_connected" in edge.gateway.log()
        assert "security=SASL_SSL" in (edge.gateway.log())
        # The password is never printed, neither in the settings at start nor in any log line.
        assert secure.passwords[PLAIN_USER if mechanism == "PLAIN" else USER] not in (
            edge.gateway.log()
        )
    finally:
        assert edge.gateway.terminate() == 0


async def test_the_edge_forwards_over_mutual_tls(secure: SecureKafka, tmp_path: Path) -> None:
    cert, key = secure.client_cert("gateway-mtls")
    edge = Edge(tmp_path, mtls_env(secure, cert, key))
    await asyncio.to_thread(edge.gateway.start)
    try:
        await asyncio.to_thread(edge.publish, 50)
        await forwarded(secure, edge, 50)
    finally:
        assert edge.gateway.terminate() == 0


def _one_error_line(edge: Edge, reason: str) -> str:
    """The gateway tried more than once, and logged the cause once, at level error."""
    log = edge.gateway.log
    wait_until(
        lambda: log().count("event=kafka_connect_failed") >= 3,
        60,
        "three connection attempts",
    )
    errors = [
        line
        for line in log().splitlines()
        if "event=kafka_connect_failed" in line and "level=error" in line
    ]
    assert len(errors) == 1, errors
    assert f"reason={reason}" in errors[0]
    return errors[0]


def _buffered(edge: Edge, count: int) -> None:
    wait_until(
        lambda: edge.gateway.status()["buffer"]["depth"] == count,
        60,
        f"{count} readings held in the buffer",
    )


async def test_a_wrong_password_is_reported_buffered_and_recovered_after_a_restart(
    secure: SecureKafka, tmp_path: Path
) -> None:
    wrong = "not-the-password"
    edge = Edge(tmp_path, sasl_env(secure, EDGE_LOG_LEVEL="DEBUG", EDGE_KAFKA_SASL_PASSWORD=wrong))
    await asyncio.to_thread(edge.gateway.start)
    await asyncio.to_thread(edge.publish, 40)
    await asyncio.to_thread(_buffered, edge, 40)
    line = await asyncio.to_thread(_one_error_line, edge, "authentication_failed")
    assert "EDGE_KAFKA_SASL_PASSWORD" in line  # the hint names the setting...
    assert wrong not in edge.gateway.log()  # ...never its value
    status = await asyncio.to_thread(edge.kafka_status)
    assert (status["connected"], status["failure"]) == (False, "authentication_failed")
    assert "EDGE_KAFKA_SASL_USERNAME" in status["hint"]

    await asyncio.to_thread(edge.restart, sasl_env(secure))
    try:
        await forwarded(secure, edge, 40)
        await asyncio.to_thread(_buffered, edge, 0)
    finally:
        assert edge.gateway.terminate() == 0


async def test_a_broker_certificate_from_an_unknown_ca_is_refused_and_nothing_is_lost(
    secure: SecureKafka, tmp_path: Path
) -> None:
    stranger = CertAuthority(tmp_path / "other-ca", "some-other-ca")
    edge = Edge(
        tmp_path / "edge",
        sasl_env(secure, EDGE_LOG_LEVEL="DEBUG", EDGE_KAFKA_SSL_CAFILE=str(stranger.cert)),
    )
    await asyncio.to_thread(edge.gateway.start)
    try:
        await asyncio.to_thread(edge.publish, 20)
        await asyncio.to_thread(_buffered, edge, 20)
        line = await asyncio.to_thread(_one_error_line, edge, "certificate_untrusted")
        assert "EDGE_KAFKA_SSL_CAFILE" in line
        status = await asyncio.to_thread(edge.kafka_status)
        assert status["failure"] == "certificate_untrusted"
        assert "certificate verify failed" in status["last_error"]
    finally:
        assert edge.gateway.terminate() == 0


async def test_an_expired_client_certificate_is_named_and_a_renewed_one_forwards(
    secure: SecureKafka, tmp_path: Path
) -> None:
    cert, key = secure.client_cert("gateway-expired", expired=True)
    edge = Edge(tmp_path, mtls_env(secure, cert, key, EDGE_LOG_LEVEL="DEBUG"))
    await asyncio.to_thread(edge.gateway.start)
    await asyncio.to_thread(edge.publish, 20)
    await asyncio.to_thread(_buffered, edge, 20)
    line = await asyncio.to_thread(_one_error_line, edge, "certificate_expired")
    assert "EDGE_KAFKA_SSL_CERTFILE expired on" in line
    status = await asyncio.to_thread(edge.kafka_status)
    assert (status["connected"], status["failure"]) == (False, "certificate_expired")

    renewed_cert, renewed_key = secure.client_cert("gateway-renewed")
    await asyncio.to_thread(edge.restart, mtls_env(secure, renewed_cert, renewed_key))
    try:
        await forwarded(secure, edge, 20)
    finally:
        assert edge.gateway.terminate() == 0


async def test_the_hub_worker_consumes_over_sasl_ssl(
    secure: SecureKafka,
    redis_url: str,
    fresh_database: str,
    tmp_path: Path,
) -> None:
    device = f"secure-{uuid.uuid4().hex[:8]}"
    readings = [make_reading(device, 1_700_000_000_000 + i, {"value": float(i)}) for i in range(30)]
    producer = AIOKafkaProducer(bootstrap_servers=secure.plaintext, acks="all")
    await producer.start()
    try:
        for reading in readings:
            await producer.send_and_wait(topics.TELEMETRY, encode(reading), key=device.encode())
    finally:
        await producer.stop()
    worker = HubWorkerProcess(
        tmp_path,
        secure.sasl_ssl,
        redis_url,
        database_url=fresh_database,
        env={
            "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HUB_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "HUB_KAFKA_SASL_USERNAME": HUB_USER,
            "HUB_KAFKA_SASL_PASSWORD": secure.passwords[HUB_USER],
            "HUB_KAFKA_SSL_CAFILE": str(secure.ca.cert),
        },
    )
    conn = await asyncpg.connect(fresh_database)
    try:
        worker.start()

        async def all_stored() -> bool:
            query = "SELECT count(*) FROM readings WHERE device_id = $1"
            count = await conn.fetchval(query, device)
            return bool(count == len(readings))

        await async_wait_until(all_stored, 120, f"30 readings in PostgreSQL ({worker.log_path})")
        assert secure.passwords[HUB_USER] not in worker.log()
        assert not worker.errors(), worker.errors()
    finally:
        await conn.close()
        await worker.stop()
        worker.cleanup()


async def test_the_hub_worker_names_a_refused_password_while_it_waits(
    secure: SecureKafka, redis_url: str, tmp_path: Path
) -> None:
    worker = HubWorkerProcess(
        tmp_path,
        secure.sasl_ssl,
        redis_url,
        env={
            "HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HUB_KAFKA_SASL_USERNAME": HUB_USER,
            "HUB_KAFKA_SASL_PASSWORD": "not-the-password",
            "HUB_KAFKA_SSL_CAFILE": str(secure.ca.cert),
        },
    )
    worker.start()
    try:

        async def waiting() -> bool:
            return worker.count("kafka_connect_failed") >= 1

        await async_wait_until(waiting, 60, "the worker waiting for Kafka")
        line = next(ln for ln in worker.log().splitlines() if "kafka_connect_failed" in ln)
        assert "authentication_failed" in line
        assert "HUB_KAFKA_SASL_PASSWORD" in line
        assert "not-the-password" not in worker.log()
        assert worker.running()
    finally:
        await worker.stop()
        worker.cleanup()
