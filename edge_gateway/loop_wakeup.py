"""Waking the event loop from the intake's writer thread, once for many commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopWakeup:
    """Calls `callback` on `loop` from any thread, with at most one call waiting at a time:
    commits that come while one waits share it. For a callback that acts on everything there
    is when it runs (the forwarder leases all that is pending), not on each call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._waiting = False
        self.scheduled = 0  # wake-ups sent to the loop (for tests and profiles)

    def __call__(self) -> None:
        if self._waiting:
            return  # the waiting call runs after this commit: it covers it
        self._waiting = True
        self.scheduled += 1
        self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        # Cleared before the callback: a commit from now on schedules a call of its own.
        self._waiting = False
        self._callback()
