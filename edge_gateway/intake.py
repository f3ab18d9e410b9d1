"""MQTT messages -> durable buffer, on one writer thread. Each message is routed (reading, status
or dead letter), appended to the buffer in a batched transaction, and only then handed back to
its source to acknowledge (`on_durable`), so nothing is acknowledged that a crash could lose.

Sources: the paho bridge on an external broker (edge_gateway.bridge) and the embedded broker's
sessions (edge_gateway.broker_intake). Batches are as large as the load makes them: the writer
commits whatever is waiting as soon as its previous commit is done, with no timer, so a quiet
pipe commits each message at once and a busy one in large transactions."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_gateway.buffer import AppendResult, Buffer, BufferRecord
from edge_gateway.routing import MessageRouter, Routed
from edge_gateway.sparkplug.host import Command
from edge_gateway.stats import GatewayCounters

log = logging.getLogger("edge.intake")

# Bounded so a slow disk pushes back on the sources (and so on the devices), not on memory.
INBOX_MAX = 20_000
_BUFFER_RETRY_MAX_S = 5.0
_DROP_LOG_EVERY_S = 10.0


def _key(record: BufferRecord) -> str | None:
    return None if record.key is None else record.key.decode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_ms: int
    ack: object = None  # the source's acknowledgement token; None for QoS 0
    # A record made by the gateway itself (a connector's device metadata), appended as is in
    # the order it was put, with the messages around it; topic and payload are then unused.
    metadata: BufferRecord | None = None


# Called on the writer thread with the batch's tokens in the order received (MQTT-4.6.0-2).
DurableCallback = Callable[[list[object]], None]
# Called on the writer thread with what the Sparkplug host wants published (NCMD rebirths).
CommandCallback = Callable[[list[Command]], None]
# How often the writer wakes on a quiet inbox for the Sparkplug host's reorder timeouts.
TICK_S = 0.1


@dataclass(frozen=True)
class IntakeTarget:
    """Where a source's messages go: routed into the buffer, counted; `on_appended` after each
    commit (the forwarder's wake-up)."""

    buffer: Buffer
    router: MessageRouter
    counters: GatewayCounters
    batch_max: int
    on_appended: Callable[[], None] = lambda: None

    def intake(
        self, on_durable: DurableCallback, on_commands: CommandCallback = lambda _: None
    ) -> Intake:
        return Intake(
            self.buffer,
            self.router,
            self.counters,
            batch_max=self.batch_max,
            on_durable=on_durable,
            on_appended=self.on_appended,
            on_commands=on_commands,
        )

    def takes(self, topic: str) -> bool:
        return self.router.takes(topic)


class Intake:
    def __init__(
        self,
        buffer: Buffer,
        router: MessageRouter,
        counters: GatewayCounters,
        *,
        batch_max: int,
        on_durable: DurableCallback,
        on_appended: Callable[[], None] = lambda: None,
        on_commands: CommandCallback = lambda _: None,
    ) -> None:
        self._buffer = buffer
        self._router = router
        self._counters = counters
        self._batch_max = batch_max
        self._on_durable = on_durable
        self._on_appended = on_appended
        self._on_commands = on_commands
        self._tick_s = TICK_S if router.sparkplug is not None else None
        self._next_tick = 0.0
        self._inbox: queue.Queue[Inbound | None] = queue.Queue(maxsize=INBOX_MAX)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._last_drop_log = 0.0

    def start(self) -> None:
        self._thread.start()

    def put(self, message: Inbound, timeout: float | None = None) -> None:
        """Blocks while the inbox is full (raises queue.Full after `timeout`)."""
        self._inbox.put(message, timeout=timeout)

    def put_nowait(self, message: Inbound) -> None:
        self._inbox.put_nowait(message)

    def drain(self, timeout: float) -> None:
        """Wait until what was put so far is committed (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while self._inbox.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)  # polls a condition (the inbox is settled), bounded by the deadline

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the writer thread."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout)

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch, done = self._next_batch()
            tick = self._tick_due()
            if batch or tick:
                self._commit(batch, tick=tick)
                for _ in batch:
                    self._inbox.task_done()
            if done:
                return

    def _next_batch(self) -> tuple[list[Inbound], bool]:
        """Whatever is waiting, up to the batch limit, without waiting for more (group commit:
        under load the batch is what came during the previous commit)."""
        try:
            first = self._inbox.get(timeout=self._tick_s)
        except queue.Empty:
            return [], False
        if first is None:
            self._inbox.task_done()
            return [], True
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._inbox.task_done()
                return batch, True
            batch.append(item)
        return batch, False

    def _tick_due(self) -> bool:
        if self._tick_s is None:
            return False
        now = time.monotonic()
        if now < self._next_tick:
            return False
        self._next_tick = now + self._tick_s
        return True

    def _commit(self, batch: list[Inbound], *, tick: bool = False) -> None:
        route = self._router.route_all
        routed = [
            r
            for m in batch
            for r in (
                route(m.topic, m.payload, m.received_ms)
                if m.metadata is None
                else [Routed("metadata", m.metadata, _key(m.metadata))]
            )
        ]
        if tick:
            routed += self._router.tick(now_ms())
        result = self._append(routed) if routed else AppendResult(0, 0)
        if result is None:
            return
        tokens = [m.ack for m in batch if m.ack is not None]
        if tokens:
            self._on_durable(tokens)
        self._count(sum(1 for m in batch if m.metadata is None), routed)
        self._side_effects()
        if result.dropped:
            self._log_drop(result.dropped)
        if routed:
            self._on_appended()

    def _side_effects(self) -> None:
        commands, notices = self._router.take_side_effects()
        for notice in notices:
            log.warning(
                notice.event,
                extra={
                    "device": notice.device_id,
                    "reason": notice.reason,
                    "detail": notice.detail,
                },
            )
        if commands:
            try:
                self._on_commands(commands)
            except Exception:  # a publish that failed must not stop the intake
                log.exception("sparkplug_command_failed", extra={"commands": len(commands)})

    def _append(self, routed: Sequence[Routed]) -> AppendResult | None:
        delay = 0.05
        while True:
            try:
                return self._buffer.append([r.record for r in routed])
            except Exception:  # disk full, I/O error: keep the batch, retry, never ack
                self._counters.buffer_errors_total += 1
                log.exception(
                    "buffer_append_failed", extra={"batch": len(routed), "retry_in_s": delay}
                )
                if self._stopping.wait(delay):
                    log.error("buffer_append_abandoned", extra={"batch": len(routed)})
                    return None
                delay = min(delay * 2, _BUFFER_RETRY_MAX_S)

    def _count(self, received: int, routed: Sequence[Routed]) -> None:
        c = self._counters
        c.received_total += received
        for r in routed:
            if r.kind == "reading":
                c.readings_total += 1
            elif r.kind == "status":
                c.statuses_total += 1
            elif r.kind == "metadata":
                c.device_metadata_total += 1
                log.info(
                    "device_metadata_reported",
                    extra={"device": r.device_id or "-", "topic": r.record.topic},
                )
            else:
                c.dead_lettered_total += 1
                log.warning(
                    "dead_letter",
                    extra={
                        "device": r.device_id or "-",
                        "reason": r.reason,
                        "error": r.record.headers[0][1].decode(),
                    },
                )

    def _log_drop(self, dropped: int) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            stats = self._buffer.stats()
            log.warning(
                "buffer_full_dropped_oldest",
                extra={
                    "dropped": dropped,
                    "dropped_total": stats.dropped_total,
                    "max_bytes": stats.max_bytes,
                },
            )
