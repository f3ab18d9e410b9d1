"""Time zones, local times, plot axes and the time-range picker's spans: no UI, no I/O."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.windows import MINUTE_MS

HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

# The time-range picker: label -> span. "live" shows the last 15 minutes and appends readings
# as they arrive; "custom" takes two datetimes.
LIVE: Final = "live"
CUSTOM: Final = "custom"
RANGE_SPANS_MS: Final[dict[str, int]] = {
    LIVE: 15 * MINUTE_MS,
    "15 min": 15 * MINUTE_MS,
    "1 h": HOUR_MS,
    "24 h": DAY_MS,
    "7 days": 7 * DAY_MS,
    "30 days": 30 * DAY_MS,
    "90 days": 90 * DAY_MS,
    "1 year": 365 * DAY_MS,
}
RANGE_CHOICES: Final[tuple[str, ...]] = (*RANGE_SPANS_MS, CUSTOM)
# Long ranges read the hourly or daily rollups (hub.storage.tiers), so even years are cheap;
# the bound only keeps a typo in the year from asking for centuries.
MAX_CUSTOM_SPAN_MS: Final = 10 * 366 * DAY_MS


def zone(name: str | None) -> ZoneInfo:
    """The browser's IANA time zone as the login page reported it; UTC for anything unusable."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def local_datetime(ts_ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(tz)


def format_time(ts_ms: int | None, tz: ZoneInfo) -> str:
    if ts_ms is None:
        return "-"
    return local_datetime(ts_ms, tz).strftime("%Y-%m-%d %H:%M:%S")


def plot_x(ts_ms: int, tz: ZoneInfo) -> str:
    """A chart x value: the local wall-clock time as Plotly reads dates (it has no zones)."""
    return local_datetime(ts_ms, tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def plot_xs(ts: Iterable[int], tz: ZoneInfo) -> list[str]:
    if tz.key == "UTC":  # the common server case: skip the zone conversion per point
        return [
            (datetime(1970, 1, 1) + timedelta(milliseconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            for t in ts
        ]
    return [plot_x(t, tz) for t in ts]


def parse_local(text: str, tz: ZoneInfo) -> int:
    """An `<input type=datetime-local>` value (`2026-11-27T14:05`, seconds optional) in ``tz``
    as epoch ms; ValueError if it is not one."""
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date and time: {text!r}") from None
    if naive.tzinfo is not None:
        return int(naive.timestamp() * 1000)
    return int(naive.replace(tzinfo=tz).timestamp() * 1000)


def input_value(ts_ms: int, tz: ZoneInfo) -> str:
    """``ts_ms`` as an `<input type=datetime-local>` value in ``tz`` (to the minute)."""
    return local_datetime(ts_ms, tz).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class TimeRange:
    choice: str  # one of RANGE_CHOICES
    start: int
    end: int

    @property
    def live(self) -> bool:
        return self.choice == LIVE


def time_range(
    choice: str,
    now_ms: int,
    *,
    custom_start: str | None = None,
    custom_end: str | None = None,
    tz: ZoneInfo | None = None,
) -> TimeRange:
    """The [start, end) a picker choice stands for at ``now_ms``; ValueError for a bad choice
    or custom range (start not before end, or longer than MAX_CUSTOM_SPAN_MS)."""
    if choice in RANGE_SPANS_MS:
        return TimeRange(choice, now_ms - RANGE_SPANS_MS[choice], now_ms)
    if choice != CUSTOM:
        raise ValueError(f"unknown range {choice!r}; expected one of {', '.join(RANGE_CHOICES)}")
    if not custom_start or not custom_end:
        raise ValueError("a custom range needs a start and an end")
    zone_ = tz or ZoneInfo("UTC")
    start, end = parse_local(custom_start, zone_), parse_local(custom_end, zone_)
    if start >= end:
        raise ValueError("the start must be before the end")
    if end - start > MAX_CUSTOM_SPAN_MS:
        raise ValueError(f"a custom range spans at most {MAX_CUSTOM_SPAN_MS // DAY_MS} days")
    return TimeRange(CUSTOM, start, end)


def now_ms() -> int:
    """The wall clock in epoch ms."""
    return int(time.time() * 1000)
