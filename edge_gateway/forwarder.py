"""Buffer -> Kafka. Leases the oldest records, produces them (idempotent, acks=all) and deletes
them only once Kafka acknowledged them; anything else goes back to the buffer and is retried with
exponential backoff and jitter while Kafka is away.

The buffer can fail too (disk full, I/O error, a locked file): the forwarder then backs off and
retries with the records still in the buffer. A record whose ack failed is leased and sent again;
the hub absorbs the duplicate by primary key, whereas a record dropped here would be lost."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from edge_gateway.buffer import Buffer, StoredRecord
from edge_gateway.settings import EdgeSettings
from edge_gateway.stats import GatewayCounters
from iot_common.backoff import Backoff
from iot_common.kafka_diagnosis import KafkaFailure, classify, diagnose
from protocol import encode_telemetry_batch, topics

log = logging.getLogger("edge.forwarder")

# Kafka will never take these records, so retrying them would stall every record behind them.
PERMANENT_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)
# What a buffer call may raise and be retried after; anything else (a closed buffer, records
# missing from the file) is a bug or corruption and ends the task, which makes the gateway unready.
BUFFER_ERRORS = (sqlite3.Error, OSError)
_IDLE_PROBE_S = 5.0
# How many request timeouts to wait for Kafka's answer on a batch before taking it as lost.
_ANSWER_TIMEOUT_FACTOR = 3
_MAX_REQUEST_BYTES = 2 * 1024 * 1024
PASSWORD_IN_CLEAR_HINT = "SASL PLAIN without TLS sends the password as it is: use SASL_SSL"
# A packed value grows past this only with its first reading, so packing never makes a record
# larger than one big reading alone would be (nor than a broker that takes those refuses).
PACK_MAX_BYTES = 64 * 1024


@dataclass(slots=True)
class Outgoing:
    """One Kafka record to produce, and the buffer records it carries."""

    ids: list[int]
    topic: str
    key: bytes | None
    values: list[bytes]
    headers: list[tuple[str, bytes]] | None
    timestamp_ms: int
    packed: bool = False
    size: int = 0  # bytes of `values`

    def __post_init__(self) -> None:
        self.size = sum(map(len, self.values))

    @property
    def value(self) -> bytes:
        return encode_telemetry_batch(self.values) if self.packed else self.values[0]


def outgoing(
    batch: Sequence[StoredRecord],
    value_version: int,
    max_bytes: int = PACK_MAX_BYTES,
    telemetry_topic: str = topics.TELEMETRY,
) -> list[Outgoing]:
    """The Kafka records for one leased batch. Version 2: each device's telemetry, in order,
    packed into values of at most `max_bytes` (version 2 values even for one reading, so a hub
    that cannot read them shows at once, not only under load); everything else as it is."""
    out: list[Outgoing] = []
    open_packs: dict[bytes, Outgoing] = {}
    for stored in batch:
        r = stored.record
        one = Outgoing(
            [stored.id], r.topic, r.key, [r.value], list(r.headers) or None, r.created_ms
        )
        if value_version == 1 or r.topic != telemetry_topic or r.key is None or r.headers:
            out.append(one)
            continue
        pack = open_packs.get(r.key)
        if pack is not None and pack.size + len(r.value) > max_bytes:
            out.append(open_packs.pop(r.key))
            pack = None
        if pack is None:
            one.packed = True
            open_packs[r.key] = one
        else:
            pack.ids.append(stored.id)
            pack.values.append(r.value)
            pack.size += len(r.value)
    return out + list(open_packs.values())


def make_producer(settings: EdgeSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=settings.gateway_id,
        acks="all",
        enable_idempotence=True,
        compression_type=None
        if settings.kafka_compression == "none"
        else settings.kafka_compression,
        # No wait: a batch is what the buffer leased, sent at once (5 ms cost 6 ms at p50).
        linger_ms=0,
        max_batch_size=512 * 1024,
        max_request_size=_MAX_REQUEST_BYTES,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
        **settings.aiokafka_security(),
    )


@dataclass(slots=True)
class SendResult:
    """What Kafka did with one leased batch."""

    acked: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)  # refused for good: deleted, not retried
    retry: list[int] = field(default_factory=list)
    failure: BaseException | None = None


class ErrorEpisode:
    """Consecutive failures of one kind, reported as one start and one end, not once each."""

    def __init__(self) -> None:
        self.errors = 0

    def failed(self) -> bool:
        """Count a failure; True if it starts an episode."""
        self.errors += 1
        return self.errors == 1

    def succeeded(self) -> int:
        """End the episode; return how many failures it had (0: there was none)."""
        errors, self.errors = self.errors, 0
        return errors


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
        self._buffer_backoff = Backoff(max_s=settings.forward_backoff_max_s)
        self._buffer_episode = ErrorEpisode()
        # Leased records a failed release left in flight: given back before the next lease.
        self._unreleased: list[int] = []
        self._reported_failure: str | None = None  # the configuration failure last logged

    def notify(self) -> None:
        """New records are in the buffer (call on the event loop's thread)."""
        self._wakeup.set()

    @property
    def producer(self) -> AIOKafkaProducer | None:
        return self._producer if self._counters.kafka_connected else None

    async def run(self, stop: asyncio.Event) -> None:
        if self._settings.kafka_sends_password_in_clear:
            log.warning("kafka_password_in_clear", extra={"hint": PASSWORD_IN_CLEAR_HINT})
        try:
            while not stop.is_set():
                if self._unreleased and not await self._release([]):
                    await self._pause(stop, self._buffer_backoff.next_delay())
                    continue
                if self._producer is None and not await self._connect():
                    await self._pause(stop, self._backoff.next_delay())
                    continue
                try:
                    batch = await asyncio.to_thread(
                        self._buffer.lease,
                        self._settings.forward_batch_max,
                        self._settings.forward_batch_bytes,
                    )
                except BUFFER_ERRORS as exc:
                    self._buffer_failed("lease", exc)
                    await self._pause(stop, self._buffer_backoff.next_delay())
                    continue
                if not batch:
                    self._buffer_ok()
                    await self._idle(stop)
                    continue
                result = await self._send(batch)
                settled = await self._settle(result)
                if result.failure is not None:
                    self._counters.kafka_errors_total += 1
                    self._note_failure(
                        "kafka_send_failed", result.failure, pending=len(result.retry)
                    )
                    await self._disconnect()
                    await self._pause(stop, self._backoff.next_delay())
                    continue
                self._backoff.reset()
                if settled:
                    self._buffer_ok()
                else:
                    await self._pause(stop, self._buffer_backoff.next_delay())
        finally:
            await self._disconnect()

    async def _send(self, batch: list[StoredRecord]) -> SendResult:
        """Produce one batch and wait for Kafka's answer on every record."""
        assert self._producer is not None
        producer = self._producer
        result = SendResult()
        futures: list[tuple[list[int], asyncio.Future[object]]] = []
        telemetry = topics.topic_name(topics.TELEMETRY, self._settings.kafka_topic_prefix)
        for record in outgoing(
            batch, self._settings.kafka_value_version, telemetry_topic=telemetry
        ):
            try:
                fut = await producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    headers=record.headers,
                    timestamp_ms=record.timestamp_ms,
                )
            except PERMANENT_ERRORS as exc:
                result.rejected += record.ids
                self._reject(record.ids, exc)
                continue
            except KafkaError as exc:
                result.failure = exc
                break
            futures.append((record.ids, fut))
        answers = await self._answers([f for _, f in futures])
        for (record_ids, _), answer in zip(futures, answers, strict=True):
            if not isinstance(answer, BaseException):
                result.acked += record_ids
            elif isinstance(answer, PERMANENT_ERRORS):
                result.rejected += record_ids
                self._reject(record_ids, answer)
            else:
                result.retry += record_ids
                result.failure = result.failure or answer
        sent_ids = {i for record_ids, _ in futures for i in record_ids} | set(result.rejected)
        result.retry += [s.id for s in batch if s.id not in sent_ids]
        return result

    async def _answers(self, futures: list[asyncio.Future[object]]) -> list[object]:
        """Kafka's answer for each record: its metadata, or the exception it failed with.

        aiokafka fails what it cannot deliver, but not when the broker's address is gone (a
        container stopped, packets dropped): then its futures wait forever and the gateway
        would look connected while nothing moves. So the wait is bounded, and an unanswered
        record fails like a timeout (it stays in the buffer and is sent again)."""
        if not futures:
            return []
        timeout_s = _ANSWER_TIMEOUT_FACTOR * self._settings.kafka_request_timeout_ms / 1000
        _, pending = await asyncio.wait(futures, timeout=timeout_s)
        for future in pending:
            future.cancel()
        late = KafkaTimeoutError(f"no answer from Kafka within {timeout_s:g} s")
        return [late if f in pending else (f.exception() or f.result()) for f in futures]

    async def _settle(self, result: SendResult) -> bool:
        """Delete what Kafka has and give back the rest; True if the buffer did both."""
        done, retry = result.acked + result.rejected, list(result.retry)
        acked = True
        if done:
            try:
                await asyncio.to_thread(self._buffer.ack, done)
            except BUFFER_ERRORS as exc:
                self._buffer_failed("ack", exc, records=len(done))
                # Kafka has them but the buffer still does too: send them again, never drop them.
                retry += done
                acked = False
            else:
                # Counted once the buffer let go of them, so a resent record counts once.
                self._counters.forwarded_total += len(result.acked)
        released = not retry or await self._release(retry)
        return acked and released

    async def _release(self, ids: list[int]) -> bool:
        """Put leased records back to pending, with any a failed release left over."""
        self._unreleased += ids
        try:
            await asyncio.to_thread(self._buffer.release, self._unreleased)
        except BUFFER_ERRORS as exc:
            self._buffer_failed("release", exc, records=len(self._unreleased))
            return False
        self._unreleased = []
        return True

    def _buffer_failed(self, op: str, exc: BaseException, **fields: object) -> None:
        c = self._counters
        c.forward_buffer_errors_total += 1
        c.buffer_last_error = f"{op}: {type(exc).__name__}: {exc}"[:300]
        if self._buffer_episode.failed():
            log.warning(
                "buffer_error",
                extra={"op": op, "error": f"{type(exc).__name__}: {exc}"[:300], **fields},
            )

    def _buffer_ok(self) -> None:
        self._buffer_backoff.reset()
        errors = self._buffer_episode.succeeded()
        if errors:
            log.info("buffer_recovered", extra={"errors": errors})

    def _reject(self, record_ids: list[int], exc: BaseException) -> None:
        self._counters.kafka_rejected_total += len(record_ids)
        log.error(
            "kafka_rejected_record",
            extra={
                "record": record_ids[0],
                "records": len(record_ids),
                "error": type(exc).__name__,
            },
        )

    async def _connect(self) -> bool:
        producer = self._producer_factory(self._settings)
        timeout_s = _ANSWER_TIMEOUT_FACTOR * self._settings.kafka_request_timeout_ms / 1000
        try:
            # Bounded for the same reason as the answers: a blackholed address never fails.
            await asyncio.wait_for(producer.start(), timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            self._note_failure("kafka_connect_failed", exc, await self._diagnose(exc))
            return False
        self._producer = producer
        self._counters.kafka_connected = True
        self._counters.kafka_last_error = None
        self._counters.kafka_failure = self._counters.kafka_hint = None
        self._reported_failure = None
        log.info(
            "kafka_connected",
            extra={
                "bootstrap": self._settings.kafka_bootstrap,
                "security": self._settings.kafka_security_protocol,
            },
        )
        return True

    async def _diagnose(self, exc: BaseException) -> KafkaFailure:
        """The cause behind aiokafka's "Unable to bootstrap" (a refused password, an untrusted
        certificate...), from one direct connection with the same settings."""
        if isinstance(exc, KafkaConnectionError):
            found = await diagnose(
                self._settings.kafka_bootstrap,
                self._settings.aiokafka_security(),
                "EDGE_",
                self._settings.kafka_request_timeout_ms / 1000,
                self._settings.kafka_ssl_certfile,
            )
            if found is not None:
                return found
        return classify(exc, "EDGE_")

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        self._counters.kafka_connected = False
        if producer is not None:
            # A fresh producer after a failure also gets a fresh idempotence epoch.
            try:
                await asyncio.wait_for(producer.stop(), timeout=10)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("kafka_stop_failed", extra={"error": type(exc).__name__})

    def _note_failure(
        self,
        event: str,
        exc: BaseException,
        failure: KafkaFailure | None = None,
        **fields: object,
    ) -> None:
        c = self._counters
        was_connected = c.kafka_connected
        c.kafka_connected = False
        failure = failure or classify(exc, "EDGE_")
        c.kafka_last_error = failure.detail
        c.kafka_failure, c.kafka_hint = failure.kind, failure.hint or None
        level = logging.WARNING if was_connected or self._backoff.attempts == 0 else logging.INFO
        if failure.needs_configuration:
            # Retrying cannot fix it: one ERROR line naming the setting, not one per attempt.
            repeated = failure.kind == self._reported_failure
            level = logging.DEBUG if repeated else logging.ERROR
            self._reported_failure = failure.kind
            fields = {**fields, "reason": failure.kind, "hint": failure.hint}
        log.log(
            level,
            event,
            extra={"error": c.kafka_last_error, "attempt": self._backoff.attempts + 1, **fields},
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
