"""Redis side of the hub: latest values, last-seen, device state and the live pub/sub channels.

Redis holds nothing PostgreSQL cannot rebuild, so no Redis error may ever stop ingestion: every
call catches them all, counts them, logs once per episode and returns `False`. Two kinds:

* Redis unreachable (connection refused or lost, timeouts): an outage of every call, logged as
  `redis_unavailable`. While it lasts, calls are skipped (and counted) except for probes, the
  first `probe_interval_s` after the failure and then at doubling intervals up to `probe_max_s`:
  a host that drops packets costs ingestion a connect timeout now and then, not on every batch.
  redis-py reconnects by itself on the next call that goes through.
* Redis answering with an error (`OOM` at maxmemory with noeviction, `READONLY` on a replica,
  `NOPERM` from an ACL, ...): a rejection of that operation only, logged as `redis_rejected` and
  counted by the reply's code. Other operations may well go through meanwhile (reads and
  PUBLISH under OOM or READONLY), so they are not held back; the rejected operation is probed
  the same way as an outage.

Either episode ends with `redis_recovered` at the first call that goes through. A pipeline is
one call: if any of its commands is refused the call fails, although the others were applied.

The keys and channels, and the one encoding of each value: `hub.storage.redis_keys`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.typing import EncodableT, FieldT

from hub.storage.live_messages import encode_readings_message
from hub.storage.redis_keys import (
    ALERTS_CHANNEL,
    DEVICE_STATE_KEY,
    GATEWAYS_KEY,
    LAST_SEEN_KEY,
    READINGS_CHANNEL,
    latest_key,
    text,
)
from hub.storage.redis_values import (
    DevicePresence,
    GatewayHealth,
    Presence,
    decode_gateway_health,
    encode_device_presence,
    encode_gateway_health,
    encode_latest,
)
from protocol import NormalisedReading

PUBLISH_CHUNK: Final = 500  # readings per `iot:live:readings` message

# Redis unreachable: an outage of every call. BusyLoadingError (Redis loading its dump after a
# restart) and AuthenticationError are ConnectionError subclasses.
REDIS_UNAVAILABLE: Final = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
# Everything a Redis call can raise: the above, and a reply refusing the command (ResponseError:
# OOM, READONLY, NOPERM, ...).
REDIS_ERRORS: Final = (redis_errors.RedisError, OSError)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class LiveStats:
    calls_total: int = 0
    failed_total: int = 0  # calls that reached for Redis and failed, rejections included
    skipped_total: int = 0  # calls not attempted: Redis known to be down, or the op refused
    outages_total: int = 0
    rejected_total: Counter[str] = field(default_factory=Counter)  # by reply code: OOM, NOPERM


def reply_code(exc: BaseException) -> str:
    """The first word of a Redis error reply (`OOM`, `READONLY`, `NOPERM`, `ERR`, ...), which
    redis-py strips from the message; the exception's class name for errors of the client's own."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def describe(exc: BaseException) -> str:
    """For logs: a refusal as Redis worded it (`OOM command not allowed ...`), else the class."""
    if isinstance(exc, redis_errors.ResponseError):
        return f"{reply_code(exc)} {exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _Episode:
    """Failures since `since`; the next attempt (a probe) waits until `next_probe`."""

    since: float
    wait_s: float
    next_probe: float
    code: str  # the reply code of a rejection; "" for an outage


class LiveStore:
    """Redis adapter. Construct with a client (or `from_url`); nothing connects until a call."""

    def __init__(
        self,
        client: Redis,
        *,
        probe_interval_s: float = 1.0,
        probe_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._probe_interval_s = probe_interval_s
        self._probe_max_s = probe_max_s
        self._clock = clock
        self._outage: _Episode | None = None
        self._rejected: dict[str, _Episode] = {}  # by op
        self.stats = LiveStats()

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 2.0, probe_interval_s: float = 1.0
    ) -> LiveStore:
        # redis-py's default retries up to 10 times with backoff on every call: seconds of stall
        # per batch during an outage. One quick retry still replaces a pooled connection that a
        # Redis restart closed, without counting that as an outage.
        client = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), retries=1),
            health_check_interval=30,
        )
        return cls(client, probe_interval_s=probe_interval_s)

    @property
    def available(self) -> bool:
        """False while an outage is ongoing (the last attempted call found Redis unreachable);
        a rejected op does not count, Redis is answering."""
        return self._outage is None

    @property
    def rejected_ops(self) -> frozenset[str]:
        """The ops Redis refused at their last attempt."""
        return frozenset(self._rejected)

    async def aclose(self) -> None:
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            await self._redis.aclose()

    async def __aenter__(self) -> LiveStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- operations ----------------------------------------------------------------------------

    async def update_latest(self, readings: Sequence[NormalisedReading]) -> bool:
        """Latest value per device and metric, and last-seen per device: one pipeline per batch.

        Within a batch the newest reading of each metric wins; across batches the last write
        wins, so replaying an older Kafka range shows older values until the device's next
        reading (`_ts` tells the reader how old they are). `iot:last_seen` never moves back.
        """
        if not readings:
            return True
        latest = merge_latest(readings)

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for device_id, device in latest.items():
                    pipe.hset(latest_key(device_id), mapping=device.fields())
                pipe.zadd(
                    LAST_SEEN_KEY,
                    {device_id: device.ts for device_id, device in latest.items()},
                    gt=True,
                )
                await _execute(pipe)

        return await self._call("update_latest", run)

    async def publish_readings(self, readings: Sequence[NormalisedReading]) -> bool:
        if not readings:
            return True
        messages = [encode_readings_message(chunk) for chunk in _chunks(readings, PUBLISH_CHUNK)]

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(READINGS_CHANNEL, message)
                await _execute(pipe)

        return await self._call("publish_readings", run)

    async def publish_alert(self, event_json: str | bytes) -> bool:
        async def run() -> None:
            await self._redis.publish(ALERTS_CHANNEL, event_json)

        return await self._call("publish_alert", run)

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: Presence, ts_ms: int
    ) -> bool:
        """Presence as the status agent last applied it (same arguments as the database's)."""
        presence = DevicePresence(state=state, ts=ts_ms, site=site, gateway_id=gateway_id)
        value = encode_device_presence(presence)

        async def run() -> None:
            await self._redis.hset(DEVICE_STATE_KEY, device_id, value)

        return await self._call("set_device_state", run)

    async def set_gateway_state(self, health: GatewayHealth) -> bool:
        """A gateway's latest health record."""
        value = encode_gateway_health(health)

        async def run() -> None:
            await self._redis.hset(GATEWAYS_KEY, health.gateway_id, value)

        return await self._call("set_gateway_state", run)

    async def gateway_heartbeats(self) -> list[tuple[str, int]]:
        """(gateway_id, heard) of every gateway in `iot:gateways`, whichever worker received it:
        heard is the earlier of the gateway's own ts and the hub's receive time, as the status
        agent judges liveness. Empty while Redis is away; unreadable entries are skipped."""
        found: list[tuple[str, int]] = []

        async def run() -> None:
            entries = await self._redis.hgetall(GATEWAYS_KEY)
            found.extend(_parse_heartbeats(entries))

        await self._call("gateway_heartbeats", run)
        return found

    # -- outages and rejections ---------------------------------------------------------------

    async def _call(self, op: str, run: Callable[[], Awaitable[None]]) -> bool:
        self.stats.calls_total += 1
        now = self._clock()
        rejected = self._rejected.get(op)
        if any(e is not None and now < e.next_probe for e in (self._outage, rejected)):
            self.stats.skipped_total += 1
            return False
        try:
            await run()
        except REDIS_UNAVAILABLE as exc:
            self.stats.failed_total += 1
            if self._outage is None:
                self.stats.outages_total += 1
                log.warning("redis_unavailable", extra={"op": op, "error": describe(exc)})
            self._outage = self._failed(self._outage, now, "")
            return False
        except redis_errors.RedisError as exc:
            # Refused (OOM, READONLY, NOPERM...): this op only, others may still go through.
            code = reply_code(exc)
            self.stats.failed_total += 1
            self.stats.rejected_total[code] += 1
            self._end_outage(op, now)  # it answered, so it is reachable
            if rejected is None:
                log.warning(
                    "redis_rejected", extra={"op": op, "code": code, "error": describe(exc)}
                )
            self._rejected[op] = self._failed(rejected, now, code)
            return False
        self._end_outage(op, now)
        if rejected is not None:
            del self._rejected[op]
            self._log_recovered(op, now, rejected)
        return True

    def _failed(self, episode: _Episode | None, now: float, code: str) -> _Episode:
        if episode is None:
            episode = _Episode(since=now, wait_s=self._probe_interval_s, next_probe=0.0, code=code)
        else:
            episode.wait_s = min(episode.wait_s * 2, self._probe_max_s)
        episode.next_probe = self._clock() + episode.wait_s
        return episode

    def _end_outage(self, op: str, now: float) -> None:
        if self._outage is not None:
            self._log_recovered(op, now, self._outage)
            self._outage = None

    def _log_recovered(self, op: str, now: float, episode: _Episode) -> None:
        extra: dict[str, object] = {
            "op": op,
            "down_s": round(now - episode.since, 1),
            "failed_total": self.stats.failed_total,
            "skipped_total": self.stats.skipped_total,
        }
        if episode.code:
            extra["code"] = episode.code
        log.info("redis_recovered", extra=extra)


async def _execute(pipe: Pipeline) -> None:
    """Run a pipeline and raise the first refusal among its replies, if any: every command ran,
    so the others were applied, but the call failed. `raise_on_error=False` because the default
    raise rewrites the reply's message with the command and its arguments."""
    results = await pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, redis_errors.RedisError):
            raise result


@dataclass
class DeviceLatest:
    """One device's newest of a batch, merged reading by reading."""

    ts: int
    site: str
    type: str | None = None
    metrics: dict[str, float | bool] = field(default_factory=dict)

    def fields(self) -> dict[FieldT, EncodableT]:
        # Copied into redis-py's own key type (a dict's key type is invariant).
        encoded = encode_latest(self.metrics, ts=self.ts, site=self.site, type=self.type)
        return {name: value for name, value in encoded.items()}


def merge_latest(readings: Iterable[NormalisedReading]) -> dict[str, DeviceLatest]:
    # The newest value of each metric wins, and the newest known type; values are encoded once
    # per device and metric, not once per reading (a batch holds many readings of each device).
    latest: dict[str, DeviceLatest] = {}
    for reading in sorted(readings, key=lambda r: r.ts):
        device = latest.get(reading.device_id)
        if device is None:
            device = latest[reading.device_id] = DeviceLatest(reading.ts, reading.site)
        device.metrics.update(reading.metrics)
        device.ts, device.site = reading.ts, reading.site
        if reading.type is not None:
            device.type = reading.type
    return latest


def _parse_heartbeats(entries: dict[Any, Any]) -> Iterable[tuple[str, int]]:
    for gateway_id, raw in entries.items():
        health = decode_gateway_health(raw)
        if health is not None:
            yield text(gateway_id), health.heard


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
