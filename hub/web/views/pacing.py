"""When a list page re-reads its data: every `every_s`, and soon (but at most every `soon_s`)
once something it does not show yet has arrived; and when to redraw its ages. No UI; the clock
(monotonic seconds) is passed in for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

TICK_S: Final = 1.0  # the "x s ago" labels and sparklines


@dataclass
class RefreshPacing:
    every_s: float
    soon_s: float
    clock: Callable[[], float] = time.monotonic
    _wanted_at: float | None = None
    _last_refresh: float = field(default=0.0)
    _last_tick: float = 0.0

    def __post_init__(self) -> None:
        self._last_refresh = self.clock()

    def want(self) -> None:
        """Something arrived that the page does not show: re-read soon."""
        if self._wanted_at is None:
            self._wanted_at = self.clock()

    def refresh_due(self) -> bool:
        since = self.clock() - self._last_refresh
        wanted = self._wanted_at is not None and since >= self.soon_s
        return wanted or since >= self.every_s

    def refreshed(self) -> None:
        self._last_refresh = self.clock()
        self._wanted_at = None

    def tick_due(self) -> bool:
        now = self.clock()
        if now - self._last_tick < TICK_S:
            return False
        self._last_tick = now
        return True
