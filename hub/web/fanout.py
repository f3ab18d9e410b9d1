"""Live fan-out: ONE Redis subscription per web process, copied to every page session and
WebSocket client through a bounded queue each.

Delivery never waits for a subscriber: a message goes into each queue with `put_nowait`, and a
subscriber whose queue is full is dropped on the spot (counted; its iterator ends, so its page
reloads or its WebSocket is closed with a reason). A slow client costs only itself; everyone
else keeps receiving every message in order.

The messages come from a `hub.storage.live_feed.LiveFeed` (one Redis subscription per
process, surviving outages); without one (the in-memory stores of `hub.storage.memory_web`),
the fan-out is connected once started and takes its messages from whoever calls `feed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

from hub.storage.live_feed import LiveFeed, RedisLiveFeed
from hub.storage.live_messages import LiveReading, decode_alert_message, decode_readings_message
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL

__all__ = ["FanoutStats", "LiveEvent", "LiveFanout", "Subscription", "parse_message"]

log = logging.getLogger(__name__)


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
    def __init__(self, source: LiveFeed | None, *, queue_size: int = 1000) -> None:
        """``source``: where the messages come from (closed by `stop`); None: from `feed`."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._source = source
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.stats = FanoutStats()

    @classmethod
    def from_url(cls, url: str, *, queue_size: int = 1000) -> LiveFanout:
        return cls(RedisLiveFeed.from_url(url), queue_size=queue_size)

    @property
    def connected(self) -> bool:
        """True while the Redis subscription is up."""
        return self._subscribed.is_set()

    async def wait_subscribed(self, timeout: float) -> None:
        """Until the Redis subscription is up (tests; readiness)."""
        async with asyncio.timeout(timeout):
            await self._subscribed.wait()

    async def start(self) -> None:
        if self._source is None:
            self._subscribed.set()
            return
        if self._task is None:
            self._task = asyncio.create_task(self._source.run(self), name="live-fanout")
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
        if self._source is not None:
            await self._source.aclose()

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

    # -- the feed's side (`hub.storage.live_feed.LiveSink`) -------------------------------------

    def up(self, *, again: bool) -> None:
        if again:
            self.stats.redis_reconnects_total += 1
        self._subscribed.set()

    def down(self) -> None:
        self._subscribed.clear()

    def feed(self, channel: str, data: bytes | str) -> None:
        """One message of a live channel, as the subscription reads it."""
        self.stats.received_total += 1
        event = parse_message(channel, data)
        if event is None:
            self.stats.undecodable_total += 1
            return
        self.publish(event)


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
