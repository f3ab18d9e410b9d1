"""Reconnect delays: doubling from `first_s` up to `max_s`, back to the start after a success."""

from __future__ import annotations


class Backoff:
    def __init__(self, max_s: float, first_s: float = 0.5) -> None:
        self._first_s = min(first_s, max_s)
        self._max_s = max_s
        self._next_s = self._first_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self._first_s
