"""Login throttling policy: pure, no I/O and no clock (the caller passes `now`).

Each throttle key (one per user name, one per client address) has a count of recent failed
sign-ins and the time of the last one. The first `free_failures` cost nothing; after that each
further attempt has to wait `base_wait_s * 2**(extra - 1)`, capped at `max_wait_s`, counted
from the last failure. A key that has seen no failure for `forget_after_s` starts afresh.

An attempt is *reserved* as a failure before the password is checked (`reserve`), so that many
attempts sent at once cannot all pass the check before any is counted; a success then forgets
the user's key and gives the address its attempt back (`settle_success`). Refused attempts are
counted apart (`refuse`): the first of a wait is audited, the rest only counted, and the count
goes into the audit record of the next attempt let through, so a flood of refused attempts
cannot flood the audit log. The stores in `hub.storage.throttle_store` apply these functions
atomically to shared state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from hub.storage.throttle_store import EMPTY, ThrottleState

__all__ = [
    "EMPTY",
    "Decision",
    "KeyKind",
    "ThrottlePolicy",
    "ThrottleState",
    "admit",
    "refuse",
    "reserve",
    "settle_success",
    "throttle_key",
    "wait_s",
]

KeyKind = Literal["user", "address"]
_MAX_KEY_CHARS: Final = 128


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures: int = 5
    base_wait_s: float = 1.0
    max_wait_s: float = 900.0
    forget_after_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.free_failures < 0:
            raise ValueError(f"free_failures must be >= 0, got {self.free_failures}")
        if not 0 < self.base_wait_s <= self.max_wait_s:
            raise ValueError(
                f"need 0 < base_wait_s <= max_wait_s, got {self.base_wait_s}, {self.max_wait_s}"
            )
        if self.forget_after_s < self.max_wait_s:
            # Forgetting sooner than the longest wait would cut that wait short.
            raise ValueError(
                f"forget_after_s ({self.forget_after_s}) must be >= max_wait_s ({self.max_wait_s})"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an attempt may go ahead; if not, how long to wait (whole seconds, at least 1).
    ``refused_before``: attempts refused since the last counted failure (not counting this one),
    for the audit log."""

    allowed: bool
    retry_after_s: int = 0
    refused_before: int = 0


def throttle_key(kind: KeyKind, value: str) -> str:
    """A bounded, case-folded key: `Alice` and `alice` share a budget (user names are
    case-sensitive in the database, but an attacker must not get one budget per spelling)."""
    return f"{kind}:{value.casefold()[:_MAX_KEY_CHARS]}"


def current(state: ThrottleState, now: float, policy: ThrottlePolicy) -> ThrottleState:
    """The state as it counts at ``now``: forgotten after `forget_after_s` without failures."""
    if state.failures and now - state.last_failure >= policy.forget_after_s:
        return EMPTY
    return state


def wait_s(state: ThrottleState, now: float, policy: ThrottlePolicy) -> float:
    """Seconds until the next attempt is allowed (0: allowed now)."""
    state = current(state, now, policy)
    extra = state.failures - policy.free_failures
    if extra <= 0:
        return 0.0
    # 2**extra overflows a float long after it passed max_wait_s: cap the exponent first.
    exponent = min(extra - 1, 64)
    wait = min(policy.base_wait_s * 2.0**exponent, policy.max_wait_s)
    return max(0.0, state.last_failure + wait - now)


def admit(keys: Sequence[tuple[ThrottleState, ThrottlePolicy]], now: float) -> Decision:
    """An attempt is allowed only if every key it falls under (each with its own policy)
    allows it; otherwise it waits for the longest of their waits."""
    longest = max((wait_s(state, now, policy) for state, policy in keys), default=0.0)
    refused = max((current(state, now, policy).refused for state, policy in keys), default=0)
    if longest <= 0:
        return Decision(allowed=True, refused_before=refused)
    return Decision(allowed=False, retry_after_s=max(1, math.ceil(longest)), refused_before=refused)


def refuse(state: ThrottleState, now: float, policy: ThrottlePolicy) -> ThrottleState:
    """Count a refused attempt against a key that made it wait (the wait stays as it is)."""
    if wait_s(state, now, policy) <= 0:
        return state
    return ThrottleState(state.failures, state.last_failure, state.refused + 1)


def reserve(state: ThrottleState, now: float, policy: ThrottlePolicy) -> ThrottleState:
    """Count an admitted attempt as a failure until it is known to have succeeded."""
    state = current(state, now, policy)
    return ThrottleState(failures=state.failures + 1, last_failure=now)  # refused: 0 again


def settle_success(kind: KeyKind, state: ThrottleState) -> ThrottleState:
    """After a right password: the user's own key starts afresh; the address only gets back the
    attempt reserved for this sign-in, so one good account cannot launder an address that is
    guessing at others."""
    if kind == "user":
        return EMPTY
    return ThrottleState(failures=max(0, state.failures - 1), last_failure=state.last_failure)
