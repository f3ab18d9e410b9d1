from __future__ import annotations

import asyncio

import pytest

from tests.support.kafka import ensure_topics
from tests.support.services import kafka_bootstrap, mosquitto_address, run_services


@pytest.fixture(scope="session")
def kafka() -> str:
    """A real Kafka (KRaft) on loopback, started by scripts/services if it is not running."""
    run_services("start", "kafka")
    bootstrap = kafka_bootstrap()
    asyncio.run(ensure_topics(bootstrap))
    return bootstrap


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    """A real Mosquitto on loopback (the external-broker path)."""
    run_services("start", "mosquitto")
    return mosquitto_address()
