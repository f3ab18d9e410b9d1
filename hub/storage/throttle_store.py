"""Where the login throttle keeps its counts (`hub.web.throttle_store.LoginThrottle` applies the
policy of `hub.web.throttle` through one of these).

Two adapters of one small port (`ThrottleStore.transact`: read some keys' states, let a pure
function decide, write its answer, all atomically): `MemoryThrottleStore` for one process and
`RedisThrottleStore`, shared by every web replica (optimistic WATCH/MULTI, retried on a
conflict), on the keys `iot:login-throttle:*`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

__all__ = [
    "EMPTY",
    "REDIS_KEY_PREFIX",
    "MemoryThrottleStore",
    "RedisThrottleStore",
    "T",
    "ThrottleState",
    "ThrottleStore",
    "Transaction",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int
    last_failure: float  # epoch seconds
    refused: int = 0  # attempts refused since the last failure was counted


EMPTY: Final = ThrottleState(failures=0, last_failure=0.0)

# Given the keys' current states: the states to write (None: write nothing) and a result.
Transaction = Callable[[list[ThrottleState]], tuple[list[ThrottleState] | None, T]]
REDIS_KEY_PREFIX: Final = "iot:login-throttle:"
_MAX_CONFLICTS: Final = 50


class ThrottleStore(Protocol):
    async def transact(self, keys: Sequence[str], ttl_s: float, fn: Transaction[T]) -> T:
        """Apply ``fn`` to the states of ``keys`` atomically; a written state that is not
        EMPTY expires ``ttl_s`` after the write, an EMPTY one is deleted."""
        ...


class MemoryThrottleStore:
    """One process's throttle (tests, and the fallback while Redis is away). Expired entries
    are dropped lazily; the policy forgets old failures by itself anyway."""

    def __init__(self, clock: Callable[[], float] = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._states: dict[str, tuple[ThrottleState, float]] = {}
        self._lock = asyncio.Lock()

    async def transact(self, keys: Sequence[str], ttl_s: float, fn: Transaction[T]) -> T:
        async with self._lock:
            now = self._clock()
            states = [self._get(key, now) for key in keys]
            written, result = fn(states)
            if written is not None:
                for key, state in zip(keys, written, strict=True):
                    self._put(key, state, now + ttl_s)
            return result

    def _get(self, key: str, now: float) -> ThrottleState:
        entry = self._states.get(key)
        if entry is None or entry[1] <= now:
            self._states.pop(key, None)
            return EMPTY
        return entry[0]

    def _put(self, key: str, state: ThrottleState, expires: float) -> None:
        if state == EMPTY:
            self._states.pop(key, None)
            return
        if key not in self._states and len(self._states) >= self._max_keys:
            # A flood of made-up names must not grow memory without bound: drop the oldest.
            self._states.pop(next(iter(self._states)))
        self._states[key] = (state, expires)


class RedisThrottleStore:
    """Shared by every replica: a hash per key (`f` failures, `t` last failure), WATCHed while
    the decision is made, so two replicas never both spend the same attempt."""

    def __init__(self, redis: Redis, prefix: str = REDIS_KEY_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix

    async def transact(self, keys: Sequence[str], ttl_s: float, fn: Transaction[T]) -> T:
        names = [self._prefix + key for key in keys]
        ttl_ms = max(1, math.ceil(ttl_s * 1000))
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_CONFLICTS):
                try:
                    await pipe.watch(*names)
                    states = [_parse(await pipe.hgetall(name)) for name in names]
                    written, result = fn(states)
                    if written is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return result
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for name, state in zip(names, written, strict=True):
                        if state == EMPTY:
                            pipe.delete(name)
                        else:
                            pipe.hset(
                                name,
                                mapping={
                                    "f": state.failures,
                                    "t": state.last_failure,
                                    "r": state.refused,
                                },
                            )
                            pipe.pexpire(name, ttl_ms)
                    await pipe.execute()
                    return result
                except redis_errors.WatchError:
                    continue  # another replica changed a key meanwhile: decide again
                finally:
                    await pipe.reset()  # type: ignore[no-untyped-call]
        raise redis_errors.RedisError(f"throttle keys kept changing: {_MAX_CONFLICTS} conflicts")


def _parse(fields: dict[bytes | str, bytes | str]) -> ThrottleState:
    try:
        failures = int(fields.get(b"f", fields.get("f", 0)))
        last = float(fields.get(b"t", fields.get("t", 0.0)))
        refused = int(fields.get(b"r", fields.get("r", 0)))
    except (TypeError, ValueError):
        return EMPTY  # not ours or damaged: start afresh rather than lock someone out
    if failures <= 0:
        return EMPTY
    return ThrottleState(failures=failures, last_failure=last, refused=max(0, refused))
