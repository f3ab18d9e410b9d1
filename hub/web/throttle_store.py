"""Where the login throttle keeps its counts, and the service the login paths call.

Two adapters of one small port (`ThrottleStore.transact`: read some keys' states, let a pure
function decide, write its answer, all atomically): `MemoryThrottleStore` for one process and
`RedisThrottleStore`, shared by every web replica (optimistic WATCH/MULTI, retried on a
conflict). `LoginThrottle` applies `hub.web.throttle` through a store: Redis normally, this
process's memory while Redis is unreachable (one warning line per failed call), so a Redis
outage neither locks every operator out nor switches the throttle off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from hub.storage.live import REDIS_ERRORS, describe
from hub.web.throttle import (
    EMPTY,
    Decision,
    KeyKind,
    ThrottlePolicy,
    ThrottleState,
    admit,
    refuse,
    reserve,
    settle_success,
    throttle_key,
)

__all__ = [
    "REDIS_KEY_PREFIX",
    "LoginThrottle",
    "MemoryThrottleStore",
    "RedisThrottleStore",
    "ThrottleStore",
    "Transaction",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
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


class LoginThrottle:
    """Call `begin` before checking a password and, if it is allowed, `succeeded` after a
    right one. A failure needs no call: `begin` counted it already."""

    def __init__(
        self,
        store: ThrottleStore,
        *,
        user_policy: ThrottlePolicy,
        address_policy: ThrottlePolicy,
        clock: Callable[[], float] = time.time,
        fallback: ThrottleStore | None = None,
    ) -> None:
        self._store = store
        self._fallback = fallback if fallback is not None else MemoryThrottleStore(clock)
        self._policies: dict[KeyKind, ThrottlePolicy] = {
            "user": user_policy,
            "address": address_policy,
        }
        self._clock = clock
        self._ttl_s = max(user_policy.forget_after_s, address_policy.forget_after_s)

    def _keys(self, user: str, address: str | None) -> list[tuple[KeyKind, str]]:
        keys: list[tuple[KeyKind, str]] = [("user", throttle_key("user", user))]
        if address:
            keys.append(("address", throttle_key("address", address)))
        return keys

    async def begin(self, user: str, address: str | None) -> Decision:
        """Admit the attempt and count it as a failure, or say how long to wait."""
        keys = self._keys(user, address)
        now = self._clock()

        def decide(states: list[ThrottleState]) -> tuple[list[ThrottleState] | None, Decision]:
            policies = [self._policies[kind] for kind, _ in keys]
            pairs = list(zip(states, policies, strict=True))
            decision = admit(pairs, now)
            if not decision.allowed:  # counted, but it does not lengthen the wait
                return [refuse(s, now, p) for s, p in pairs], decision
            return [reserve(s, now, p) for s, p in pairs], decision

        return await self._transact([key for _, key in keys], decide)

    async def succeeded(self, user: str, address: str | None) -> None:
        keys = self._keys(user, address)

        def settle(states: list[ThrottleState]) -> tuple[list[ThrottleState] | None, None]:
            return [
                settle_success(kind, s) for (kind, _), s in zip(keys, states, strict=True)
            ], None

        await self._transact([key for _, key in keys], settle)

    async def _transact(self, keys: list[str], fn: Transaction[T]) -> T:
        try:
            return await self._store.transact(keys, self._ttl_s, fn)
        except REDIS_ERRORS as exc:
            log.warning(
                "login_throttle_degraded", extra={"store": "memory", "error": describe(exc)}
            )
            return await self._fallback.transact(keys, self._ttl_s, fn)
