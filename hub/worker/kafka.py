"""Faust's connection to Kafka for the worker: the broker URLs and the credentials of
HUB_KAFKA_SECURITY_PROTOCOL (its consumer, producer and topic admin all use them)."""

from __future__ import annotations

import faust

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
