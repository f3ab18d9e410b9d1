"""Poison isolation: one record that cannot be processed must not hold up the ones around it.

A batch is processed whole first (the fast path). If that fails with an error that a record
can be to blame for (`is_poison`: bad data the database refuses, a bug meeting an odd value),
the batch is split in halves and each half tried again, down to single items: the items that
still fail alone are returned with their errors, for the caller to dead-letter or skip and
count. Every other item is processed, in its original order. A clean batch costs one call; a
batch with k poison items costs O(k log n) calls. Any other error (an outage to wait out, a
fault of the system such as a missing table) propagates: no record is to blame for it, and
dead-lettering every record for it would empty the pipeline into the dead-letter topic.

Processing must be idempotent (a half that succeeded may have been partly applied by the
failed whole), which the hub's writes are: the primary key absorbs repeated readings, rollups
are recomputed, statuses older than the one applied are ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def isolate_poison(
    items: Sequence[T],
    process: Callable[[Sequence[T]], Awaitable[object]],
    *,
    is_poison: Callable[[Exception], bool],
) -> list[tuple[T, Exception]]:
    """Process `items`, bisecting around poison; the items that fail alone, with why."""
    if not items:
        return []
    try:
        await process(items)
    except Exception as exc:
        if not is_poison(exc):
            raise
        if len(items) == 1:
            return [(items[0], exc)]
    else:
        return []
    middle = len(items) // 2
    first = await isolate_poison(items[:middle], process, is_poison=is_poison)
    return first + await isolate_poison(items[middle:], process, is_poison=is_poison)


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, bounded, for a log field or an `error` header."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:limit]
