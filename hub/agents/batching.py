"""Batches that flush at once when the pipe is idle and fill only under load.

Faust's `take(max, within)` flushes on a fixed `within` tick, so even a lone reading waits up to
`within` (0.1 s: ~50 ms on average, ~100 ms at p99 of the worker's share of the live latency).
`IdleFlushBatcher` flushes a batch as soon as the burst it belongs to has been handed over
(nothing added for `quiet_s`), but never sooner than `interval_s` after the previous flush:
after a quiet spell a reading goes at once; under load the flushes are `interval_s` apart and
the batches fill, so the number of batches (one PostgreSQL transaction and one Redis message
each) stays bounded whatever the rate. No reading waits much more than `interval_s`.

Pure asyncio: `hub.worker.stream_batches` feeds it from a Faust stream.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# How long nothing new must arrive for a burst (one Kafka fetch handed over record by record)
# to count as over: far above the gap between two records of one fetch, far below a fetch.
QUIET_S = 0.002


class IdleFlushBatcher(Generic[T]):
    """`add` items (waits while `max_items` are pending); `next_batch` takes them in order."""

    def __init__(
        self,
        max_items: int,
        *,
        interval_s: float,
        quiet_s: float = QUIET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if interval_s < 0 or quiet_s < 0:
            raise ValueError("interval_s and quiet_s must not be negative")
        self._max = max_items
        self._interval = interval_s
        self._quiet = quiet_s
        self._clock = clock
        self._items: list[T] = []
        self._first_at = 0.0  # when the oldest pending item was added
        self._last_add = 0.0
        self._last_flush = -math.inf
        self._started = asyncio.Event()  # set while items are pending
        self._full = asyncio.Event()  # set while max_items are pending
        self._taken = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    async def add(self, item: T) -> None:
        """Queue one item; waits while the batch is full (backpressure on the source)."""
        while len(self._items) >= self._max:
            self._taken.clear()
            await self._taken.wait()
        now = self._clock()
        if not self._items:
            self._first_at = now
            self._started.set()
        self._items.append(item)
        self._last_add = now
        if len(self._items) >= self._max:
            self._full.set()

    def due_at(self) -> float:
        """When the pending items are to be flushed (they are not full)."""
        ready_at = max(self._first_at, self._last_flush + self._interval)
        burst_over = min(self._last_add + self._quiet, self._first_at + self._interval)
        return max(ready_at, burst_over)

    async def next_batch(self, timeout: float) -> list[T]:
        """The next batch (at most `max_items`, oldest first), once due; [] if nothing was added
        within `timeout` (so the caller can check whether to stop)."""
        if not self._items and not await _wait(self._started, timeout):
            return []
        # Woken only by a full batch, not by every add: the due time is looked at again when
        # reached, since adds meanwhile may have pushed the burst's end further.
        while len(self._items) < self._max:
            wait = self.due_at() - self._clock()
            if wait <= 0:
                break
            await _wait(self._full, wait)
        batch, self._items = self._items, []  # `add` never lets it grow past max_items
        self._started.clear()
        self._full.clear()
        self._last_flush = self._clock()
        self._taken.set()
        return batch


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
