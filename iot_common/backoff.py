"""Exponential backoff with "equal jitter": each delay is drawn from the upper half of its cap,
so retries spread out but never come sooner than half the cap (pure: the caller may pass the
random source)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self, initial_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [cap/2, cap], cap doubling up to max_s."""
        cap = min(self._max_s, self._initial_s * 2**self.attempts)
        self.attempts += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempts = 0
