"""Buffer -> Kafka. Leases the oldest records, produces them (idempotent, acks=all) and deletes
them only once Kafka acknowledged them; anything else goes back to the buffer and is retried with
exponential backoff and jitter while Kafka is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from edge_gateway.backoff import Backoff
from edge_gateway.buffer import Buffer, StoredRecord
from edge_gateway.settings import EdgeSettings
from edge_gateway.stats import GatewayCounters

log = logging.getLogger("edge.forwarder")

# Kafka will never take these records, so retrying them would stall every record behind them.
PERMANENT_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)
_IDLE_PROBE_S = 5.0
_MAX_REQUEST_BYTES = 2 * 1024 * 1024


def make_producer(settings: EdgeSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=settings.gateway_id,
        acks="all",
        enable_idempotence=True,
        compression_type=None
        if settings.kafka_compression == "none"
        else settings.kafka_compression,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=_MAX_REQUEST_BYTES,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


class Forwarder:
    def __init__(
        self,
        settings: EdgeSettings,
        buffer: Buffer,
        counters: GatewayCounters,
        *,
        producer_factory: Callable[[EdgeSettings], AIOKafkaProducer] = make_producer,
    ) -> None:
        self._settings = settings
        self._buffer = buffer
        self._counters = counters
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._wakeup = asyncio.Event()
        self._backoff = Backoff(max_s=settings.forward_backoff_max_s)

    def notify(self) -> None:
        """New records are in the buffer (call on the event loop's thread)."""
        self._wakeup.set()

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return self._producer if self._counters.kafka_connected else None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if self._producer is None and not await self._connect():
                    await self._pause(stop, self._backoff.next_delay())
                    continue
                batch = await asyncio.to_thread(
                    self._buffer.lease,
                    self._settings.forward_batch_max,
                    self._settings.forward_batch_bytes,
                )
                if not batch:
                    await self._idle(stop)
                    continue
                if await self._forward(batch):
                    self._backoff.reset()
                else:
                    await self._disconnect()
                    await self._pause(stop, self._backoff.next_delay())
        finally:
            await self._disconnect()

    async def _forward(self, batch: list[StoredRecord]) -> bool:
        """Produce one batch; True if Kafka took all of it."""
        assert self._producer is not None
        producer = self._producer
        futures: list[tuple[int, asyncio.Future[object]]] = []
        rejected: list[int] = []
        failure: BaseException | None = None
        for stored in batch:
            r = stored.record
            try:
                fut = await producer.send(
                    r.topic,
                    r.value,
                    key=r.key,
                    headers=list(r.headers) or None,
                    timestamp_ms=r.created_ms,
                )
            except PERMANENT_ERRORS as exc:
                rejected.append(stored.id)
                self._reject(stored.id, exc)
                continue
            except KafkaError as exc:
                failure = exc
                break
            futures.append((stored.id, fut))
        results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        acked: list[int] = []
        retry: list[int] = []
        for (record_id, _), result in zip(futures, results, strict=True):
            if not isinstance(result, BaseException):
                acked.append(record_id)
            elif isinstance(result, PERMANENT_ERRORS):
                rejected.append(record_id)
                self._reject(record_id, result)
            else:
                retry.append(record_id)
                failure = failure or result
        sent_ids = {record_id for record_id, _ in futures} | set(rejected)
        retry += [s.id for s in batch if s.id not in sent_ids]
        if acked or rejected:
            await asyncio.to_thread(self._buffer.ack, acked + rejected)
        if retry:
            await asyncio.to_thread(self._buffer.release, retry)
        self._counters.forwarded_total += len(acked)
        if failure is not None:
            self._counters.kafka_errors_total += 1
            self._note_failure("kafka_send_failed", failure, pending=len(retry))
            return False
        return True

    def _reject(self, record_id: int, exc: BaseException) -> None:
        self._counters.kafka_rejected_total += 1
        log.error("kafka_rejected_record", extra={"record": record_id, "error": type(exc).__name__})

    async def _connect(self) -> bool:
        producer = self._producer_factory(self._settings)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            self._note_failure("kafka_connect_failed", exc)
            return False
        self._producer = producer
        self._counters.kafka_connected = True
        self._counters.kafka_last_error = None
        log.info("kafka_connected", extra={"bootstrap": self._settings.kafka_bootstrap})
        return True

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        self._counters.kafka_connected = False
        if producer is not None:
            # A fresh producer after a failure also gets a fresh idempotence epoch.
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("kafka_stop_failed", extra={"error": type(exc).__name__})

    def _note_failure(self, event: str, exc: BaseException, **fields: object) -> None:
        was_connected = self._counters.kafka_connected
        self._counters.kafka_connected = False
        self._counters.kafka_last_error = f"{type(exc).__name__}: {exc}"[:300]
        level = logging.WARNING if was_connected or self._backoff.attempts == 0 else logging.INFO
        log.log(
            level,
            event,
            extra={
                "error": self._counters.kafka_last_error,
                "attempt": self._backoff.attempts + 1,
                **fields,
            },
        )

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for new records; meanwhile check that Kafka is still there."""
        self._wakeup.clear()
        if await wait_any((self._wakeup, stop), _IDLE_PROBE_S):
            return
        producer = self._producer
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=_IDLE_PROBE_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._note_failure("kafka_probe_failed", exc)
            await self._disconnect()

    async def _pause(self, stop: asyncio.Event, delay: float) -> None:
        await wait_any((stop,), delay)


async def wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> bool:
    """True if one of `events` was set within `timeout`."""
    tasks = [asyncio.ensure_future(event.wait()) for event in events]
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return bool(done)
