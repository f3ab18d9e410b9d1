"""Numbers, units, durations and ages as the pages show them: units and decimals from the hub's
metadata (hub.metadata) for known device types, short plain numbers for anything else."""

from __future__ import annotations

import math
from typing import Any

from hub.metadata import metric_info
from hub.web.model import Page


def unit_of(device_type: str | None, metric: str) -> str:
    spec = metric_info(device_type, metric)
    return "" if spec is None or spec.kind == "flag" else spec.unit


def is_flag(device_type: str | None, metric: str, value: float | bool | None = None) -> bool:
    """A true/false metric: by the hub's metadata for known types, else by the value's own type."""
    spec = metric_info(device_type, metric)
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
    """A latest value as the hub's metadata describes the metric (its unit and decimals) for known
    types; a short number, or yes/no for a true/false value, for anything else."""
    spec = metric_info(device_type, metric)
    if spec is None:
        return format_value(value, flag=isinstance(value, bool))
    if spec.kind == "flag":
        return format_value(value, flag=True)
    number = float(value)
    text = f"{number:,.{spec.decimals}f}" if math.isfinite(number) else str(number)
    return f"{text} {spec.unit}"


def described_value(
    device_type: str | None, metric: str, value: float | bool, unit: str | None
) -> str:
    """`metric_value` with the unit of the effective metadata (an admin's or the edge's, which
    may differ from the packaged one); `unit` None: the packaged unit."""
    if unit is None or is_flag(device_type, metric, value):
        return metric_value(device_type, metric, value)
    spec = metric_info(device_type, metric)
    number = float(value)
    if spec is None or not math.isfinite(number):
        return format_value(number, unit)
    return f"{number:,.{spec.decimals}f} {unit}".rstrip()


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
