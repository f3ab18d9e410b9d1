"""Faust's connection to Kafka for the worker: the broker URLs and the credentials of
HUB_KAFKA_SECURITY_PROTOCOL (its consumer, producer and topic admin all use them)."""

from __future__ import annotations

from typing import Final

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TransportT

from hub.settings import HubSettings


def kafka_brokers(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def kafka_credentials(settings: HubSettings) -> faust.types.auth.CredentialsT | None:
    """Faust's credentials for HUB_KAFKA_SECURITY_PROTOCOL: its consumer, producer and topic
    admin all use them."""
    context = settings.kafka_ssl_context()
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.kafka_sasl_password is not None  # the settings' check made sure
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return None


# Faust hard-codes its consumer's fetch_max_wait_ms to 1500. A fetch that goes out while every
# telemetry partition still holds records Faust has not taken asks only for idle partitions,
# and the broker holds it up to that long: readings then waited ~0.8 s more in about half of
# the bench.web_live runs. 100 ms bounds that hold; an idle worker fetches 10 times a second.
FETCH_MAX_WAIT_MS: Final = 100


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_kafka.Transport) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class HubTransport(faust_kafka.Transport):
    """Faust's aiokafka transport, its consumer fetching with `FETCH_MAX_WAIT_MS`."""

    Consumer = _Consumer


class HubApp(faust.App):
    """The worker's Faust app: `HubTransport` for its consumer."""

    def _new_transport(self) -> TransportT:
        return HubTransport(self.conf.broker_consumer, self)
