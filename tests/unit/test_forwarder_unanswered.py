"""A broker that never answers (its address gone, packets dropped): aiokafka's futures then
wait forever, so the forwarder bounds the wait, reports Kafka down and sends the records again.
Found by the compose tests: a stopped Kafka container left the gateway "connected" for good."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from edge_gateway.buffer import MemoryBuffer
from edge_gateway.forwarder import Forwarder
from edge_gateway.settings import EdgeSettings
from edge_gateway.stats import GatewayCounters
from tests.support.waiting import async_wait_until
from tests.unit.test_forwarder_buffer_errors import FakeProducer, records


class SilentThenFine(FakeProducer):
    """The first producer's sends are never answered; later producers deliver."""

    def __init__(self, sent: list[bytes], silent: bool) -> None:
        super().__init__(sent)
        self.silent = silent
        self.unanswered: list[asyncio.Future[object]] = []

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[object]:
        if not self.silent:
            return await super().send(topic, value, **kwargs)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.unanswered.append(fut)
        return fut


async def test_an_unanswered_batch_fails_reports_kafka_down_and_is_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge.forwarder")
    settings = EdgeSettings(
        kafka_request_timeout_ms=1000, forward_backoff_max_s=0.05, kafka_value_version=1
    )
    buffer, counters = MemoryBuffer(max_bytes=10_000_000), GatewayCounters()
    sent: list[bytes] = []
    producers: list[SilentThenFine] = []

    def factory(_: EdgeSettings) -> AIOKafkaProducer:
        producers.append(SilentThenFine(sent, silent=not producers))
        return cast(AIOKafkaProducer, producers[-1])

    forwarder = Forwarder(settings, buffer, counters, producer_factory=factory)
    buffer.append(records(6))
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    try:
        await async_wait_until(lambda: _down(counters), 10, "Kafka reported down")
        assert "no answer from Kafka within 3 s" in str(counters.kafka_last_error)
        assert all(f.cancelled() for f in producers[0].unanswered)
        await async_wait_until(
            lambda: _true(buffer.stats().depth == 0), 10, "records sent again and acked"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert sorted(sent) == sorted(r.value for r in records(6))
    assert counters.forwarded_total == 6
    assert [r.getMessage() for r in caplog.records].count("kafka_send_failed") == 1


async def _down(counters: GatewayCounters) -> bool:
    return counters.kafka_errors_total > 0 and not counters.kafka_connected


async def _true(value: bool) -> bool:
    return value
