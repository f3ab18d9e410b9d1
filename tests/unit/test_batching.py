"""IdleFlushBatcher: flush at once when idle, batch under load, never past max_items.

Timing is checked with a controlled clock where the rule depends on it, and otherwise only in
the direction that cannot flake: a batch not due for 60 s is not handed over within 50 ms."""

from __future__ import annotations

import asyncio

import pytest

from hub.agents.batching import IdleFlushBatcher

LONG = 60.0  # seconds no test ever waits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_lone_item_after_a_quiet_spell_goes_at_once() -> None:
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(100, interval_s=LONG, quiet_s=0)
    await batcher.add(1)
    assert await asyncio.wait_for(batcher.next_batch(LONG), 5) == [1]


async def test_under_load_the_next_batch_waits_for_the_interval() -> None:
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(100, interval_s=LONG, quiet_s=0)
    await batcher.add(1)
    assert await batcher.next_batch(LONG) == [1]
    await batcher.add(2)
    await batcher.add(3)
    pending = asyncio.ensure_future(batcher.next_batch(LONG))
    done, _ = await asyncio.wait({pending}, timeout=0.05)
    assert not done  # held back: the previous flush was just now
    pending.cancel()


async def test_due_time_follows_the_rules() -> None:
    clock = Clock()
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(
        100, interval_s=0.02, quiet_s=0.002, clock=clock
    )
    await batcher.add(1)  # after a quiet spell: due once the burst is over
    assert batcher.due_at() == pytest.approx(1000.002)
    clock.now += 0.001
    await batcher.add(2)  # the burst goes on
    assert batcher.due_at() == pytest.approx(1000.003)
    clock.now = 1000.01
    assert await batcher.next_batch(LONG) == [1, 2]  # due: handed over without waiting
    await batcher.add(3)  # right after a flush: due an interval after it
    assert batcher.due_at() == pytest.approx(1000.03)
    clock.now = 1000.05
    assert await batcher.next_batch(LONG) == [3]
    clock.now = 1000.2
    for _ in range(30):  # a burst that never goes quiet still goes an interval after its start
        await batcher.add(4)
        clock.now += 0.001
    assert batcher.due_at() == pytest.approx(1000.22)


async def test_a_full_batch_goes_at_once_whatever_the_interval() -> None:
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(3, interval_s=LONG, quiet_s=0)
    await batcher.add(0)
    assert await batcher.next_batch(LONG) == [0]
    for i in range(3):
        await batcher.add(i)
    assert await asyncio.wait_for(batcher.next_batch(LONG), 5) == [0, 1, 2]


async def test_add_waits_while_full_and_keeps_the_order() -> None:
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(2, interval_s=0, quiet_s=0)
    await batcher.add(1)
    await batcher.add(2)
    third = asyncio.ensure_future(batcher.add(3))
    done, _ = await asyncio.wait({third}, timeout=0.05)
    assert not done  # backpressure: the source waits
    assert len(batcher) == 2
    assert await batcher.next_batch(LONG) == [1, 2]
    await asyncio.wait_for(third, 5)
    assert await asyncio.wait_for(batcher.next_batch(LONG), 5) == [3]


async def test_nothing_within_the_timeout_gives_an_empty_batch() -> None:
    batcher: IdleFlushBatcher[int] = IdleFlushBatcher(10, interval_s=0)
    assert await batcher.next_batch(0.01) == []
    await batcher.add(7)
    assert await asyncio.wait_for(batcher.next_batch(LONG), 5) == [7]


async def test_an_item_added_while_waiting_is_picked_up() -> None:
    batcher: IdleFlushBatcher[str] = IdleFlushBatcher(10, interval_s=0, quiet_s=0)
    waiting = asyncio.ensure_future(batcher.next_batch(LONG))
    await asyncio.sleep(0)  # let it start waiting
    await batcher.add("a")
    assert await asyncio.wait_for(waiting, 5) == ["a"]


@pytest.mark.parametrize(
    ("max_items", "interval_s", "quiet_s"), [(0, 0.1, 0.0), (1, -1.0, 0.0), (1, 0.1, -1.0)]
)
def test_bad_parameters_are_refused(max_items: int, interval_s: float, quiet_s: float) -> None:
    with pytest.raises(ValueError, match=r"max_items|negative"):
        IdleFlushBatcher[int](max_items, interval_s=interval_s, quiet_s=quiet_s)
