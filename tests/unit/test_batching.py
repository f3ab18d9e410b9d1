"""The hub's group-commit batching (hub.worker.batching.ReadyBuffer): no timer, a batch is
what arrived while the previous one was out, and a full buffer holds the producer back."""

from __future__ import annotations

import asyncio

import pytest

from hub.worker.batching import ReadyBuffer


async def test_take_returns_as_soon_as_one_item_is_there() -> None:
    buffer: ReadyBuffer[int] = ReadyBuffer(10)
    taking = asyncio.ensure_future(buffer.take())
    await asyncio.sleep(0)  # let take() start waiting
    assert not taking.done()
    await buffer.put(1)
    assert await asyncio.wait_for(taking, 5) == [1]


async def test_a_batch_is_everything_put_since_the_last_take_up_to_max() -> None:
    buffer: ReadyBuffer[int] = ReadyBuffer(3)
    for i in range(2):
        await buffer.put(i)
    assert await buffer.take() == [0, 1]
    for i in range(2, 5):
        await buffer.put(i)
    assert await buffer.take() == [2, 3, 4]
    assert len(buffer) == 0


async def test_a_full_buffer_holds_the_producer_until_a_take() -> None:
    buffer: ReadyBuffer[int] = ReadyBuffer(2)
    await buffer.put(0)
    await buffer.put(1)
    putting = asyncio.ensure_future(buffer.put(2))
    await asyncio.sleep(0)
    assert not putting.done()
    assert await buffer.take() == [0, 1]
    await asyncio.wait_for(putting, 5)
    assert await buffer.take() == [2]


async def test_order_is_kept_across_batches() -> None:
    buffer: ReadyBuffer[int] = ReadyBuffer(4)
    taken: list[int] = []

    async def produce() -> None:
        for i in range(50):
            await buffer.put(i)

    producer = asyncio.ensure_future(produce())
    while len(taken) < 50:
        batch = await asyncio.wait_for(buffer.take(), 5)
        assert 1 <= len(batch) <= 4
        taken += batch
    await producer
    assert taken == list(range(50))


def test_max_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReadyBuffer(0)
