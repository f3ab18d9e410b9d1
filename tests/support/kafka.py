"""Read back what reached Kafka: a consumer positioned at the end of each topic when created,
so a test sees only its own records."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from protocol import NormalisedReading, decode_telemetry_value, topics

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


def telemetry_readings(
    records: Iterable[Record], site: str | None = None
) -> list[NormalisedReading]:
    """The readings in the `iot.telemetry` records (any value version), of one site if given."""
    return [
        reading
        for r in records
        if r.topic == topics.TELEMETRY
        for reading in decode_telemetry_value(r.value)
        if site is None or reading.site == site
    ]


async def ensure_topics(bootstrap: str, names: Iterable[str] = topics.KAFKA_TOPICS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, num_partitions=6, replication_factor=1) for n in names if n not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of a topic (a fresh consumer's metadata may not list the topic yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


class KafkaTail:
    """The records of `names` produced from now on (`from_beginning`: all of them)."""

    def __init__(
        self, bootstrap: str, names: Iterable[str], *, from_beginning: bool = False
    ) -> None:
        self._bootstrap = bootstrap
        self._names = list(names)
        self._from_beginning = from_beginning
        self._consumer: AIOKafkaConsumer | None = None
        self.records: list[Record] = []

    async def __aenter__(self) -> KafkaTail:
        await ensure_topics(self._bootstrap)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        parts = [tp for name in self._names for tp in await partitions_of(self._bootstrap, name)]
        consumer.assign(parts)
        if self._from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            for tp, offset in (await consumer.end_offsets(parts)).items():
                consumer.seek(tp, offset)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> list[Record]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
        new = [r for batch in batches.values() for r in batch]
        self.records += new
        return new

    async def collect_until(
        self, done: Callable[[list[Record]], bool], timeout: float, what: str
    ) -> list[Record]:
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout:.0f} s waiting for {what}; "
                    f"got {len(self.records)} records"
                )
            await self.poll()
        return self.records
