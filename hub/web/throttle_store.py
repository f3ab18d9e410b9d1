"""The login throttle the login paths call: `LoginThrottle` applies the policy of
`hub.web.throttle` through a store of `hub.storage.throttle_store`: Redis normally, this
process's memory while Redis is unreachable (one warning line per failed call), so a Redis
outage neither locks every operator out nor switches the throttle off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hub.storage.live import REDIS_ERRORS, describe
from hub.storage.throttle_store import (
    MemoryThrottleStore,
    T,
    ThrottleState,
    ThrottleStore,
    Transaction,
)
from hub.web.throttle import (
    Decision,
    KeyKind,
    ThrottlePolicy,
    admit,
    refuse,
    reserve,
    settle_success,
    throttle_key,
)

__all__ = ["LoginThrottle"]

log = logging.getLogger(__name__)


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
