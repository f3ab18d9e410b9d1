"""What the pages show, as plain functions with no UI and no I/O: numbers, ages, local times,
sparkline geometry, time ranges, list counts and the CSV export. Unit-tested in
tests/web/test_format.py."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_gateway.simulators.catalog import METRICS, MetricSpec
from hub.web.model import Page, Series

MINUTE_MS: Final = 60_000
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
}
RANGE_CHOICES: Final[tuple[str, ...]] = (*RANGE_SPANS_MS, CUSTOM)
MAX_CUSTOM_SPAN_MS: Final = 31 * DAY_MS

# Which metric a device type's sparkline draws: the one an operator would glance at first.
SPARK_METRICS: Final[dict[str, str]] = {
    "cnc_spindle": "spindle_load_pct",
    "hydraulic_press": "ram_pressure_bar",
    "conveyor": "items_per_min",
    "air_compressor": "discharge_pressure_bar",
    "cleanroom_env": "particles_0_5um_per_m3",
}


# -- numbers and units ---------------------------------------------------------------------


def metric_spec(device_type: str | None, metric: str) -> MetricSpec | None:
    """The simulator catalogue's description of a known type's metric; None for anything else."""
    for spec in METRICS.get(device_type or "", ()):
        if spec.name == metric:
            return spec
    return None


def unit_of(device_type: str | None, metric: str) -> str:
    spec = metric_spec(device_type, metric)
    return "" if spec is None or spec.kind == "flag" else spec.unit


def is_flag(device_type: str | None, metric: str, value: float | bool | None = None) -> bool:
    """A true/false metric: by the catalogue for known types, else by the value's own type."""
    spec = metric_spec(device_type, metric)
    if spec is not None:
        return spec.kind == "flag"
    return isinstance(value, bool)


def format_number(value: float) -> str:
    """Short and steady for a glance: about four significant digits, thousands separated."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_value(value: float | bool, unit: str = "", *, flag: bool = False) -> str:
    if isinstance(value, bool) or flag:
        return "yes" if value else "no"
    text = format_number(float(value))
    return f"{text} {unit}" if unit else text


def metric_value(device_type: str | None, metric: str, value: float | bool) -> str:
    """A latest value as the catalogue describes the metric (its unit and decimals) for known
    types; a short number, or yes/no for a true/false value, for anything else."""
    spec = metric_spec(device_type, metric)
    if spec is None:
        return format_value(value, flag=isinstance(value, bool))
    if spec.kind == "flag":
        return format_value(value, flag=True)
    number = float(value)
    text = f"{number:,.{spec.decimals}f}" if math.isfinite(number) else str(number)
    return f"{text} {spec.unit}"


def format_rate(per_s: float) -> str:
    return f"{format_number(per_s)}/s"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def format_wait(seconds: int) -> str:
    """A wait to the second, for a person counting down: `45 s`, `2 min 8 s`, `15 min`."""
    seconds = max(0, int(seconds))
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def format_age(ts_ms: int | None, now_ms: int) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `never` without a time."""
    if ts_ms is None:
        return "never"
    age_s = max(0, now_ms - ts_ms) // 1000
    if age_s < 60:
        return f"{age_s} s ago"
    if age_s < 3600:
        return f"{age_s // 60} min ago"
    if age_s < 86_400:
        return f"{age_s // 3600} h ago"
    return f"{age_s // 86_400} d ago"


def format_page(page: Page[Any], noun: str) -> str:
    """What a list page holds: `101-200 of 250 devices`, or `3 devices` when all are on it."""
    nouns = noun if page.total == 1 else f"{noun}s"
    if page.total > len(page.items):
        first = page.offset + 1 if page.items else 0
        return f"{first}-{page.offset + len(page.items)} of {page.total} {nouns}"
    return f"{page.total} {nouns}"


# -- time zones and local times ------------------------------------------------------------


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


# -- sparklines ----------------------------------------------------------------------------

SPARK_WIDTH: Final = 120
SPARK_HEIGHT: Final = 28
SPARK_WINDOW_MS: Final = 30 * MINUTE_MS
SPARK_POINTS: Final = 60  # one per 30 s over the window


def spark_metric(
    device_type: str | None, metrics: Sequence[str], latest: dict[str, float | bool]
) -> str | None:
    """The metric a device's sparkline draws: the type's chosen one, else its first metric that
    is not a true/false flag."""
    chosen = SPARK_METRICS.get(device_type or "")
    if chosen is not None and chosen in metrics:
        return chosen
    for metric in metrics:
        if not is_flag(device_type, metric, latest.get(metric)):
            return metric
    return None


def spark_points(
    ts: Sequence[int],
    values: Sequence[float],
    *,
    end: int,
    window_ms: int = SPARK_WINDOW_MS,
    width: int = SPARK_WIDTH,
    height: int = SPARK_HEIGHT,
) -> str:
    """SVG polyline `points` for the values within ``[end - window_ms, end]``: x by time,
    y scaled to the window's own min..max with a 2-unit margin (a flat line sits mid-height)."""
    start = end - window_ms
    pairs = [(t, v) for t, v in zip(ts, values, strict=True) if start <= t <= end]
    if not pairs:
        return ""
    lo = min(v for _, v in pairs)
    hi = max(v for _, v in pairs)
    margin = 2.0
    usable = height - 2 * margin
    coords = []
    for t, v in pairs:
        x = (t - start) * width / window_ms
        y = height / 2 if hi == lo else margin + (hi - v) * usable / (hi - lo)
        coords.append(f"{x:.1f},{y:.1f}")
    return " ".join(coords)


class SparkBuffer:
    """The last SPARK_WINDOW_MS of one metric at about SPARK_POINTS resolution: history from the
    database, then live readings folded into the same buckets (the last value in each)."""

    def __init__(self, window_ms: int = SPARK_WINDOW_MS, points: int = SPARK_POINTS) -> None:
        self.window_ms = window_ms
        self.bucket_ms = max(1, window_ms // points)
        self._buckets: dict[int, tuple[int, float]] = {}

    def add(self, ts: int, value: float) -> None:
        bucket = ts // self.bucket_ms
        held = self._buckets.get(bucket)
        if held is None or ts >= held[0]:
            self._buckets[bucket] = (ts, value)

    def extend(self, ts: Sequence[int], values: Sequence[float]) -> None:
        for t, v in zip(ts, values, strict=True):
            self.add(t, v)

    def points(self, now_ms: int) -> str:
        oldest = (now_ms - self.window_ms) // self.bucket_ms
        for bucket in [b for b in self._buckets if b < oldest]:
            del self._buckets[bucket]
        ordered = [self._buckets[b] for b in sorted(self._buckets)]
        return spark_points(
            [t for t, _ in ordered], [v for _, v in ordered], end=now_ms, window_ms=self.window_ms
        )


# -- export --------------------------------------------------------------------------------

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_filename(*parts: str) -> str:
    name = "_".join(_UNSAFE_FILENAME.sub("-", p).strip("-.") or "x" for p in parts)
    return name[:150]


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_export(series: Iterable[Series]) -> bytes:
    """One row per point: device, metric, UTC time (ISO 8601), epoch ms, value; UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device_id", "metric", "time_utc", "ts_ms", "value"])
    for s in series:
        device, metric = _cell(s.device_id), _cell(s.metric)
        for ts, value in zip(s.ts, s.values, strict=True):
            stamp = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")
            writer.writerow([device, metric, stamp.replace("+00:00", "Z"), ts, repr(value)])
    return out.getvalue().encode()
