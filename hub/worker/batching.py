"""Group-commit batches from a Faust stream: a batch is whatever arrived while the previous one
was being written, so an idle pipe writes each record at once and a busy one writes large
batches, with no timer in between.

Faust's own `take(max_, within)` yields on a fixed window: at 1,000 readings/s every reading
waited up to `within` (100 ms) before it was even written. Here the stream is drained in the
background (as `noack_take` does, by a processor on a passive stream) into a `ReadyBuffer` the
consumer empties whenever it asks for the next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar, cast

import faust
from faust.types import ChannelT
from mode.utils.aiter import aiter

T = TypeVar("T")


class ReadyBuffer(Generic[T]):
    """Items put by one side, taken in batches of at most `max_` by the other: `take` returns
    everything buffered (up to `max_`) as soon as there is one item; `put` waits while `max_`
    items are buffered (backpressure)."""

    def __init__(self, max_: int) -> None:
        if max_ < 1:
            raise ValueError("max_ must be at least 1")
        self._max = max_
        self._items: list[T] = []
        self._ready = asyncio.Event()  # holds an item
        self._room = asyncio.Event()  # holds fewer than max_
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        while len(self._items) >= self._max:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        self._ready.set()

    async def take(self) -> list[T]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        batch = self._items[: self._max]
        del self._items[: self._max]
        self._room.set()
        return batch


async def take_ready(stream: faust.Stream[Any], max_: int) -> AsyncIterator[list[Any]]:
    """Batches of the stream's events (not values: the consumer acks them after its commit),
    each at most `max_`, yielded as soon as one event is buffered and the consumer asks. A
    stopping worker cancels its agents and the stream's drainer, and with them these waits."""
    buffer: ReadyBuffer[Any] = ReadyBuffer(max_)

    async def add_to_buffer(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ready found no current event")
        await buffer.put(event)
        return value

    stream.enable_acks = False
    stream.add_processor(add_to_buffer)
    stream._enable_passive(cast("ChannelT[Any]", aiter(stream.channel)))
    while not stream.should_stop:
        yield await buffer.take()
