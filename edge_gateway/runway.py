"""Buffer runway: how long the buffer can still take data at the current rates before it is
full and starts dropping its oldest records. Pure: the caller passes in the clock and totals.

runway = free bytes / net growth, where net growth = bytes appended per second (the input)
minus bytes Kafka acknowledged per second (the output), averaged over a sliding window so one
slow batch does not make it jump. There is no runway (None) while the buffer is not growing:
forwarding keeps up with the input (net growth below `min_growth_share` of the input, which
is noise around a balanced pipe), the buffer drains, or nothing comes in. A full buffer that
keeps receiving has a runway of 0: it is dropping its oldest records.
"""

from __future__ import annotations

from collections import deque
from typing import Final

DEFAULT_WINDOW_S: Final = 30.0
# A rate over a shorter span is one batch more or less: no runway until the samples span this.
DEFAULT_MIN_SPAN_S: Final = 5.0
# Below this share of the input rate, net growth is batching noise of a healthy pipe.
DEFAULT_MIN_GROWTH_SHARE: Final = 0.05


def runway_s(free_bytes: int, growth_bytes_per_s: float) -> float | None:
    """Seconds until `free_bytes` are used up at `growth_bytes_per_s`; None if not growing."""
    if growth_bytes_per_s <= 0:
        return None
    return max(0, free_bytes) / growth_bytes_per_s


class RunwayMeter:
    """Net growth of the buffer over a sliding window of (time, bytes in, bytes out) samples,
    and the runway it leaves. One sample per call; calls may come at any pace."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        min_span_s: float = DEFAULT_MIN_SPAN_S,
        min_growth_share: float = DEFAULT_MIN_GROWTH_SHARE,
    ) -> None:
        if not 0 <= min_span_s <= window_s or window_s <= 0:
            raise ValueError(f"need 0 <= min_span_s <= window_s, window_s > 0: {min_span_s}")
        self._window_s = window_s
        self._min_span_s = min_span_s
        self._min_share = min_growth_share
        self._samples: deque[tuple[float, int, int]] = deque()

    def growth(self, now_s: float, in_bytes_total: int, out_bytes_total: int) -> float:
        """Net bytes per second over the window (negative while draining), 0.0 until the
        samples span `min_span_s`."""
        samples = self._samples
        if samples and (in_bytes_total < samples[-1][1] or out_bytes_total < samples[-1][2]):
            samples.clear()  # totals restarted (a reopened buffer): the old samples are moot
        samples.append((now_s, in_bytes_total, out_bytes_total))
        while len(samples) > 2 and now_s - samples[1][0] >= self._window_s:
            samples.popleft()
        first_s, first_in, first_out = samples[0]
        elapsed = now_s - first_s
        if elapsed <= 0 or elapsed < self._min_span_s:
            return 0.0
        inflow = (in_bytes_total - first_in) / elapsed
        net = inflow - (out_bytes_total - first_out) / elapsed
        return net if net > self._min_share * inflow else min(net, 0.0)

    def runway(
        self, now_s: float, in_bytes_total: int, out_bytes_total: int, free_bytes: int
    ) -> float | None:
        return runway_s(free_bytes, self.growth(now_s, in_bytes_total, out_bytes_total))
