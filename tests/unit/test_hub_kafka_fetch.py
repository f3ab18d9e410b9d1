"""The worker's Faust consumer fetches with FETCH_MAX_WAIT_MS, not Faust's hard-coded 1500 ms.
Nothing is started or connected: Faust's own consumer factory is replaced by a stand-in."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.transport.drivers import aiokafka as faust_kafka

from hub.worker import kafka
from hub.worker.kafka import FETCH_MAX_WAIT_MS, HubApp, HubTransport


def test_the_app_uses_the_hub_transport_and_its_consumer() -> None:
    with tempfile.TemporaryDirectory() as datadir:
        app = HubApp("test-fetch-wait", broker="kafka://127.0.0.1:1", datadir=datadir)
        assert isinstance(app.transport, HubTransport)
    assert issubclass(HubTransport.Consumer, kafka._Consumer)


def test_the_consumer_thread_is_the_hub_one(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, ...]] = []

    def init(self: object, *args: Any, **kwargs: Any) -> None:
        made.append(args)

    monkeypatch.setattr(kafka._ConsumerThread, "__init__", init)
    consumer = SimpleNamespace(loop=None, beacon=None)
    thread = kafka._Consumer._new_consumer_thread(cast(Any, consumer))
    assert isinstance(thread, kafka._ConsumerThread)
    assert made == [(consumer,)]


def test_the_worker_consumer_waits_at_most_fetch_max_wait_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = SimpleNamespace(_fetch_max_wait_ms=1500)  # what Faust sets
    monkeypatch.setattr(
        faust_kafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
        lambda self, transport: built,
    )
    thread = object.__new__(kafka._ConsumerThread)
    assert thread._create_worker_consumer(cast(Any, None)) is built
    assert built._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500
