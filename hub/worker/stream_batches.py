"""A Faust stream's events in `IdleFlushBatcher` batches, unacknowledged (the caller acks each
batch's events after its commit), in place of Faust's `noack_take`, whose fixed `within` tick
delays even a lone reading (see `hub.agents.batching`).

Built like `noack_take` (faust-streaming 0.15.3): a processor hands every event to the batcher
while the stream is drained passively in the background, so the next batch fills while the
caller writes the previous one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final, cast

import faust
from faust.types import ChannelT, EventT

from hub.agents.batching import IdleFlushBatcher

# How often a wait for the first event looks whether the stream is stopping.
STOP_POLL_S: Final = 1.0


async def idle_flush_events(
    stream: faust.Stream[Any], batcher: IdleFlushBatcher[EventT[Any]]
) -> AsyncIterator[list[EventT[Any]]]:
    async def add(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("stream processor called without a current event")
        await batcher.add(event)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked by the caller, after the commit
    stream.add_processor(add)
    stream._enable_passive(cast(ChannelT[Any], aiter(stream.channel)))  # as noack_take does
    try:
        while not stream.should_stop:
            batch = await batcher.next_batch(STOP_POLL_S)
            if batch:
                yield batch
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add)
