"""Live fan-out: ONE Redis subscription per web process, copied to every page session and
WebSocket client through a bounded queue each.

Delivery never waits for a subscriber: a message goes into each queue with `put_nowait`, and a
subscriber whose queue is full is dropped on the spot (counted; its iterator ends, so its page
reloads or its WebSocket is closed with a reason). A slow client costs only itself; everyone
else keeps receiving every message in order.

Redis going away is survived: the reader reconnects with backoff and subscribes again (messages
published meanwhile are lost; that is pub/sub, and the pages reload history from PostgreSQL).
Redis refusing the subscription (NOPERM from an ACL without the channels) is treated the same
way: `connected` stays False, so /readyz says not ready, until a retry is let through.

Without Redis (``redis=None``: the in-memory stores of `hub.storage.memory_web`), the fan-out is
connected once started and takes its messages from whoever calls `feed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hub.storage.live import REDIS_ERRORS, REDIS_UNAVAILABLE, describe
from hub.storage.live_messages import LiveReading, decode_alert_message, decode_readings_message
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL
from iot_common.backoff import Backoff

__all__ = ["FanoutStats", "LiveEvent", "LiveFanout", "Subscription", "parse_message"]

log = logging.getLogger(__name__)

CHANNELS: Final = (READINGS_CHANNEL, ALERTS_CHANNEL)
# How long one read waits for a message before looking again (lets the client run its health
# check on an idle connection, so a silently dead one is noticed).
_READ_TIMEOUT_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One live message. Shared by every subscriber that gets it whole: read, never modify."""

    kind: Literal["readings", "alert"]
    readings: list[LiveReading]  # kind=readings: the worker's message, decoded once
    alert: dict[str, Any] | None  # kind=alert: the alert event JSON ({"v", "event", **AlertRow})


@dataclass
class FanoutStats:
    subscribers: int = 0
    delivered_total: int = 0  # events put into a subscriber's queue
    dropped_subscribers_total: int = 0  # subscribers dropped for a full queue
    redis_reconnects_total: int = 0
    received_total: int = 0  # messages read from Redis
    undecodable_total: int = 0  # messages that were not the JSON we expect, skipped


def parse_message(channel: str, data: bytes | str) -> LiveEvent | None:
    """The event in one pub/sub message, or None for something we cannot read."""
    if channel == READINGS_CHANNEL:
        readings = decode_readings_message(data)
        return None if readings is None else LiveEvent("readings", readings, None)
    if channel == ALERTS_CHANNEL:
        alert = decode_alert_message(data)
        return None if alert is None else LiveEvent("alert", [], alert)
    return None


_END: Final = object()  # queued to wake a reader waiting on an empty queue


class Subscription:
    """An async iterator of `LiveEvent` (and an async context manager that unsubscribes).

    ``devices``: None for every device's readings, else only those devices' readings (an empty
    set: none). ``alerts``: whether alert events come too (all of them, whatever ``devices``).
    """

    def __init__(
        self,
        fanout: LiveFanout,
        *,
        devices: frozenset[str] | None,
        alerts: bool,
        queue_size: int,
    ) -> None:
        self._fanout = fanout
        self.devices = devices
        self.alerts = alerts
        self._queue: asyncio.Queue[LiveEvent | object] = asyncio.Queue(queue_size)
        self._ended = False
        self.dropped = False  # ended because the subscriber fell too far behind

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._ended

    def close(self) -> None:
        """Unsubscribe; the iterator ends (anything still queued is discarded)."""
        self._end()
        self._fanout._remove(self)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        with contextlib.suppress(asyncio.QueueFull):  # full: the reader is not waiting anyway
            self._queue.put_nowait(_END)

    def _offer(self, event: LiveEvent) -> bool:
        """Queue without waiting; False (and ended, dropped) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self._end()
            return False
        return True

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self

    async def __anext__(self) -> LiveEvent:
        if self._ended:
            raise StopAsyncIteration
        item = await self._queue.get()
        if self._ended or not isinstance(item, LiveEvent):
            raise StopAsyncIteration
        return item

    def get_nowait(self) -> LiveEvent | None:
        """The next queued event, or None; for a page that drains its queue on a timer."""
        if self._ended:
            return None
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return item if isinstance(item, LiveEvent) else None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LiveFanout:
    def __init__(
        self,
        redis: Redis | None,
        *,
        queue_size: int = 1000,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        """``redis``: a client for this fan-out alone (the subscription holds one connection
        for as long as it runs); it is closed by `stop`. None: no Redis, messages come through
        `feed`."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._redis = redis
        self._queue_size = queue_size
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.stats = FanoutStats()

    @classmethod
    def from_url(cls, url: str, *, queue_size: int = 1000) -> LiveFanout:
        return cls(
            Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=15),
            queue_size=queue_size,
        )

    @property
    def connected(self) -> bool:
        """True while the Redis subscription is up."""
        return self._subscribed.is_set()

    async def wait_subscribed(self, timeout: float) -> None:
        """Until the Redis subscription is up (tests; readiness)."""
        async with asyncio.timeout(timeout):
            await self._subscribed.wait()

    async def start(self) -> None:
        if self._redis is None:
            self._subscribed.set()
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-fanout")
            self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self._subscribers):
            sub.close()
        self._subscribed.clear()
        if self._redis is not None:
            with contextlib.suppress(*REDIS_UNAVAILABLE):
                await self._redis.aclose()

    def subscribe(
        self, *, devices: frozenset[str] | None = None, alerts: bool = True
    ) -> Subscription:
        sub = Subscription(self, devices=devices, alerts=alerts, queue_size=self._queue_size)
        self._subscribers.add(sub)
        self.stats.subscribers = len(self._subscribers)
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self.stats.subscribers = len(self._subscribers)

    # -- delivery ------------------------------------------------------------------------------

    def publish(self, event: LiveEvent) -> None:
        """Hand one event to every interested subscriber, never waiting."""
        by_device: dict[str, list[LiveReading]] | None = None
        for sub in list(self._subscribers):
            if event.kind == "alert":
                if not sub.alerts:
                    continue
                mine = event
            elif sub.devices is None:
                mine = event
            else:
                if by_device is None:
                    by_device = _group_by_device(event.readings)
                readings = [r for d in sub.devices & by_device.keys() for r in by_device[d]]
                if not readings:
                    continue
                mine = LiveEvent("readings", readings, None)
            if sub._offer(mine):
                self.stats.delivered_total += 1
            else:
                self._remove(sub)
                self.stats.dropped_subscribers_total += 1
                log.warning(
                    "live_subscriber_dropped",
                    extra={"reason": "slow client", "queue_size": self._queue_size},
                )

    # -- the Redis side ------------------------------------------------------------------------

    def feed(self, channel: str, data: bytes | str) -> None:
        """One message of a live channel, as the Redis subscription reads it."""
        self.stats.received_total += 1
        event = parse_message(channel, data)
        if event is None:
            self.stats.undecodable_total += 1
            return
        self.publish(event)

    async def _run(self) -> None:
        assert self._redis is not None
        backoff = Backoff(initial_s=self._backoff_initial_s, max_s=self._backoff_max_s)
        ever_subscribed = False
        outage_logged = False
        while True:
            pubsub = self._redis.pubsub()  # with the confirmations, which `_confirmed` awaits
            try:
                await pubsub.subscribe(*CHANNELS)
                await _confirmed(pubsub)
                if ever_subscribed:
                    self.stats.redis_reconnects_total += 1
                    log.info("live_redis_resubscribed", extra={"channels": ",".join(CHANNELS)})
                ever_subscribed, outage_logged = True, False
                self._subscribed.set()
                backoff.reset()
                await self._read(pubsub)
            except REDIS_ERRORS as exc:
                self._subscribed.clear()
                if not outage_logged:  # once per outage, not once per retry
                    outage_logged = True
                    refused = isinstance(exc, redis_errors.ResponseError)
                    event = "live_redis_rejected" if refused else "live_redis_unavailable"
                    log.warning(event, extra={"error": describe(exc)})
                await asyncio.sleep(backoff.next_delay())
            finally:
                self._subscribed.clear()
                with contextlib.suppress(*REDIS_UNAVAILABLE):
                    await pubsub.aclose()

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=_READ_TIMEOUT_S)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            self.feed(channel, message["data"])


async def _confirmed(pubsub: PubSub) -> None:
    """Until Redis confirms every channel. `subscribe` only sends the command; its replies, or
    a refusal (NOPERM, raised here), arrive like messages."""
    while True:
        message = await pubsub.get_message(timeout=_READ_TIMEOUT_S)
        if message is None or message["type"] != "subscribe":
            continue
        # Each confirmation carries the connection's subscription count; all of CHANNELS are
        # confirmed at once, before any message on them.
        if message["data"] == len(CHANNELS):
            return


def _report_crash(task: asyncio.Task[None]) -> None:
    # Outages are retried inside the task; anything else is a bug that ends live updates, and
    # must not pass silently.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("live_fanout_crashed", exc_info=exc)


def _group_by_device(readings: list[LiveReading]) -> dict[str, list[LiveReading]]:
    grouped: dict[str, list[LiveReading]] = {}
    for r in readings:
        grouped.setdefault(r.device_id, []).append(r)
    return grouped
