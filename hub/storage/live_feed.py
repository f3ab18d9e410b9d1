"""The hub's live channels as the web process reads them (`iot:live:readings` and
`iot:live:alerts`, `hub.storage.redis_keys`): the `LiveFeed` port, whose real adapter is ONE
Redis subscription per process (`RedisLiveFeed`); the web app's fan-out
(`hub.web.fanout.LiveFanout`) is its sink and copies each message to its subscribers. The
in-memory hub (`hub.storage.memory_web.MemoryHub.subscribe`) hands its messages over directly.

Redis going away is survived: the feed reconnects with backoff and subscribes again (messages
published meanwhile are lost; that is pub/sub, and the pages reload history from PostgreSQL).
Redis refusing the subscription (NOPERM from an ACL without the channels) is treated the same
way: the sink hears `down` until a retry is let through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, Protocol

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hub.storage.live import REDIS_ERRORS, REDIS_UNAVAILABLE, describe
from hub.storage.redis_keys import ALERTS_CHANNEL, READINGS_CHANNEL
from iot_common.backoff import Backoff

__all__ = ["CHANNELS", "LiveFeed", "LiveSink", "RedisLiveFeed"]

# The name its log lines have always carried (the loop was in hub/web/fanout.py).
log = logging.getLogger("hub.web.fanout")

CHANNELS: Final = (READINGS_CHANNEL, ALERTS_CHANNEL)
# How long one read waits for a message before looking again (lets the client run its health
# check on an idle connection, so a silently dead one is noticed).
_READ_TIMEOUT_S: Final = 1.0


class LiveSink(Protocol):
    """What a feed drives."""

    def up(self, *, again: bool) -> None:
        """The subscription stands (``again``: re-established after an outage)."""
        ...

    def down(self) -> None:
        """The subscription is gone for now; the feed is retrying."""
        ...

    def feed(self, channel: str, data: bytes | str) -> None:
        """One message of a live channel."""
        ...


class LiveFeed(Protocol):
    async def run(self, sink: LiveSink) -> None:
        """Deliver the live channels' messages to ``sink`` until cancelled."""
        ...

    async def aclose(self) -> None: ...


class RedisLiveFeed:
    def __init__(
        self, redis: Redis, *, backoff_initial_s: float = 0.2, backoff_max_s: float = 5.0
    ) -> None:
        """``redis``: a client for this feed alone (the subscription holds one connection for
        as long as it runs); `aclose` closes it."""
        self._redis = redis
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s

    @classmethod
    def from_url(cls, url: str) -> RedisLiveFeed:
        return cls(Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=15))

    async def aclose(self) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            await self._redis.aclose()

    async def run(self, sink: LiveSink) -> None:
        backoff = Backoff(initial_s=self._backoff_initial_s, max_s=self._backoff_max_s)
        ever_subscribed = False
        outage_logged = False
        while True:
            pubsub = self._redis.pubsub()  # with the confirmations, which `_confirmed` awaits
            try:
                await pubsub.subscribe(*CHANNELS)
                await _confirmed(pubsub)
                if ever_subscribed:
                    log.info("live_redis_resubscribed", extra={"channels": ",".join(CHANNELS)})
                sink.up(again=ever_subscribed)
                ever_subscribed, outage_logged = True, False
                backoff.reset()
                await _read(pubsub, sink)
            except REDIS_ERRORS as exc:
                sink.down()
                if not outage_logged:  # once per outage, not once per retry
                    outage_logged = True
                    refused = isinstance(exc, redis_errors.ResponseError)
                    event = "live_redis_rejected" if refused else "live_redis_unavailable"
                    log.warning(event, extra={"error": describe(exc)})
                await asyncio.sleep(backoff.next_delay())
            finally:
                sink.down()
                with contextlib.suppress(*REDIS_UNAVAILABLE):
                    await pubsub.aclose()


async def _read(pubsub: PubSub, sink: LiveSink) -> None:
    while True:
        message = await pubsub.get_message(timeout=_READ_TIMEOUT_S)
        if message is None or message.get("type") != "message":
            continue
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        sink.feed(channel, message["data"])


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
