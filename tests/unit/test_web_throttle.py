"""Login throttling: the pure policy, the in-memory store and `LoginThrottle`, on a fake clock.
The Redis store runs the same `LoginThrottle` tests in tests/integration/test_web_throttle.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from redis import exceptions as redis_errors

from hub.storage.throttle_store import MemoryThrottleStore, T, ThrottleStore, Transaction
from hub.web.throttle import (
    EMPTY,
    ThrottlePolicy,
    ThrottleState,
    admit,
    current,
    refuse,
    reserve,
    settle_success,
    throttle_key,
    wait_s,
)
from hub.web.throttle_store import LoginThrottle
from hub.web.views.numbers import format_wait

POLICY = ThrottlePolicy(free_failures=3, base_wait_s=1.0, max_wait_s=60.0, forget_after_s=600.0)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def failures(n: int, at: float = 100.0) -> ThrottleState:
    return ThrottleState(failures=n, last_failure=at)


# -- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, 0.0), (3, 0.0), (4, 1.0), (5, 2.0), (6, 4.0), (9, 32.0), (10, 60.0), (500, 60.0)],
)
def test_the_wait_doubles_after_the_free_failures_up_to_the_cap(
    count: int, expected: float
) -> None:
    assert wait_s(failures(count), 100.0, POLICY) == expected


def test_the_wait_counts_from_the_last_failure() -> None:
    assert wait_s(failures(6), 101.5, POLICY) == 2.5
    assert wait_s(failures(6), 104.0, POLICY) == 0.0
    assert wait_s(failures(6), 200.0, POLICY) == 0.0


def test_failures_are_forgotten_after_a_quiet_period() -> None:
    assert current(failures(9), 100.0 + 599, POLICY) == failures(9)
    assert current(failures(9), 100.0 + 600, POLICY) == EMPTY
    # Forgotten, so the next failure starts the count again.
    assert reserve(failures(9), 100.0 + 600, POLICY) == ThrottleState(1, 700.0)


def test_an_attempt_waits_for_the_longest_of_its_keys() -> None:
    loose = ThrottlePolicy(free_failures=20, max_wait_s=60.0, forget_after_s=600.0)
    decision = admit([(failures(6), POLICY), (failures(6), loose)], 100.0)
    assert not decision.allowed
    assert decision.retry_after_s == 4
    assert admit([(failures(2), POLICY), (failures(19), loose)], 100.0).allowed
    assert admit([], 100.0).allowed


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    decision = admit([(failures(4), POLICY)], 100.2)  # 0.8 s left
    assert (decision.allowed, decision.retry_after_s) == (False, 1)
    decision = admit([(failures(6), POLICY)], 100.5)  # 3.5 s left
    assert decision.retry_after_s == 4


def test_refusals_are_counted_without_lengthening_the_wait() -> None:
    waiting = failures(6)  # 4 s from t=100
    refused = refuse(waiting, 101.0, POLICY)
    assert refused == ThrottleState(6, 100.0, refused=1)
    assert wait_s(refused, 101.0, POLICY) == 3.0
    assert admit([(refused, POLICY)], 101.0).refused_before == 1
    assert refuse(failures(2), 101.0, POLICY) == failures(2)  # no wait: nothing refused
    assert reserve(refused, 104.0, POLICY).refused == 0  # the next counted failure starts over


def test_success_resets_the_user_but_only_refunds_the_address() -> None:
    assert settle_success("user", failures(7)) == EMPTY
    assert settle_success("address", failures(7)) == failures(6)
    assert settle_success("address", EMPTY) == EMPTY


def test_keys_fold_case_and_are_bounded() -> None:
    assert throttle_key("user", "Alice") == throttle_key("user", "alice")
    assert throttle_key("user", "alice") != throttle_key("address", "alice")
    assert len(throttle_key("address", "x" * 10_000)) < 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"free_failures": -1},
        {"base_wait_s": 0},
        {"base_wait_s": 10.0, "max_wait_s": 5.0},
        {"max_wait_s": 900.0, "forget_after_s": 60.0},
    ],
)
def test_a_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        ThrottlePolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (1, "1 s"), (59, "59 s"), (60, "1 min"), (128, "2 min 8 s"), (900, "15 min")],
)
def test_format_wait(seconds: int, text: str) -> None:
    assert format_wait(seconds) == text


# -- LoginThrottle on the memory store -----------------------------------------------------------


def throttle(clock: Clock, store: ThrottleStore | None = None) -> LoginThrottle:
    return LoginThrottle(
        store if store is not None else MemoryThrottleStore(clock),
        user_policy=POLICY,
        address_policy=ThrottlePolicy(free_failures=6, max_wait_s=60.0, forget_after_s=600.0),
        clock=clock,
    )


async def test_a_user_is_throttled_after_the_free_failures_and_waits_exponentially() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        assert (await t.begin("olga", "10.0.0.1")).allowed  # wrong password each time
    assert (await t.begin("olga", "10.0.0.1")).allowed  # the 4th: no wait yet
    refused = await t.begin("olga", "10.0.0.2")  # another address: the user's key decides
    assert (refused.allowed, refused.retry_after_s) == (False, 1)
    clock.now += 1
    assert (await t.begin("olga", "10.0.0.1")).allowed
    refused = await t.begin("olga", "10.0.0.1")
    assert refused.retry_after_s == 2
    # Refused attempts do not lengthen the wait.
    for _ in range(10):
        assert (await t.begin("olga", "10.0.0.1")).retry_after_s == 2
    clock.now += 2
    assert (await t.begin("olga", "10.0.0.1")).allowed


async def test_refused_attempts_are_counted_for_the_next_one_let_through() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(4):
        assert (await t.begin("olga", None)).allowed
    refusals = [await t.begin("olga", None) for _ in range(3)]
    assert [(d.allowed, d.refused_before) for d in refusals] == [(False, 0), (False, 1), (False, 2)]
    clock.now += 1
    let_through = await t.begin("olga", None)
    assert (let_through.allowed, let_through.refused_before) == (True, 3)
    assert (await t.begin("olga", None)).refused_before == 0  # counted afresh


async def test_an_address_guessing_many_users_is_throttled() -> None:
    clock = Clock()
    t = throttle(clock)
    for i in range(6):
        assert (await t.begin(f"user{i}", "10.0.0.9")).allowed
    assert (await t.begin("user6", "10.0.0.9")).allowed  # the 7th: at the limit
    refused = await t.begin("user7", "10.0.0.9")
    assert not refused.allowed
    assert (await t.begin("user7", "10.0.0.10")).allowed  # the same name from elsewhere


async def test_success_clears_the_users_failures() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        await t.begin("olga", "10.0.0.1")
    assert (await t.begin("olga", "10.0.0.1")).allowed
    await t.succeeded("olga", "10.0.0.1")
    for _ in range(4):
        assert (await t.begin("olga", "10.0.0.1")).allowed


async def test_attempts_at_the_same_moment_are_each_counted() -> None:
    clock = Clock()
    t = throttle(clock)
    decisions = await asyncio.gather(*(t.begin("olga", None) for _ in range(20)))
    assert sum(d.allowed for d in decisions) == 4  # 3 free + the first that waits 0


async def test_throttle_state_is_forgotten_after_the_quiet_period() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(4):
        assert (await t.begin("olga", None)).allowed
    clock.now += 599  # a long quiet spell, but not long enough: the next failure counts on
    assert (await t.begin("olga", None)).allowed
    assert not (await t.begin("olga", None)).allowed
    clock.now += 600  # forgotten: a fresh budget of free attempts
    for _ in range(4):
        assert (await t.begin("olga", None)).allowed


class BrokenStore:
    def __init__(self) -> None:
        self.calls = 0

    async def transact(self, keys: Sequence[str], ttl_s: float, fn: Transaction[T]) -> T:
        self.calls += 1
        raise redis_errors.ConnectionError("Redis is away")


async def test_without_redis_the_throttle_still_works_in_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    broken = BrokenStore()
    t = throttle(clock, broken)
    for _ in range(4):
        assert (await t.begin("olga", None)).allowed
    assert not (await t.begin("olga", None)).allowed
    assert broken.calls == 5
    assert "login_throttle_degraded" in caplog.text


async def test_the_memory_store_stays_bounded() -> None:
    clock = Clock()
    store = MemoryThrottleStore(clock, max_keys=10)
    t = throttle(clock, store)
    for i in range(100):
        await t.begin(f"user{i}", None)
    assert len(store._states) <= 10
    # A key that was not evicted still counts.
    for _ in range(4):
        await t.begin("user99", None)
    assert not (await t.begin("user99", None)).allowed
