"""How often one kind of event may be logged, so a misbehaving client cannot flood the log.
Pure: the caller passes in the clock."""

from __future__ import annotations

from collections import OrderedDict


class LogThrottle:
    """At most one line per key (a client) every `interval_s`, and at most `burst` lines per
    interval over all keys (clients that change their id each time). `admit` answers whether to
    log now and, if so, how many events of that key were held back since its last line."""

    def __init__(self, interval_s: float = 10.0, burst: int = 20, max_keys: int = 10_000) -> None:
        self._interval_s = interval_s
        self._burst = burst
        self._max_keys = max_keys
        self._window_start = float("-inf")
        self._lines = 0
        # key -> (time of its last line or None, events held back since)
        self._keys: OrderedDict[str, tuple[float | None, int]] = OrderedDict()

    def admit(self, key: str, now: float) -> int | None:
        """None: hold this one back. Otherwise log it, with the returned count of held-back ones."""
        if now - self._window_start >= self._interval_s:
            self._window_start, self._lines = now, 0
        last, held = self._keys.pop(key, (None, 0))
        recent = last is not None and now - last < self._interval_s
        if recent or self._lines >= self._burst:
            self._remember(key, (last, held + 1))
            return None
        self._lines += 1
        self._remember(key, (now, 0))
        return held

    def _remember(self, key: str, value: tuple[float | None, int]) -> None:
        self._keys[key] = value
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)  # the least recently seen client
