"""What the alerts page writes about an alert, without UI."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from hub.web.model import AlertRow
from hub.web.views.numbers import format_age, format_number
from hub.web.views.times import format_time


def alert_facts(a: AlertRow, tz: ZoneInfo, now: int) -> str:
    """One line: when it was raised (and how long ago), last updated, how often, the value
    that raised it, and who cleared it when."""
    facts = [
        f"raised {format_time(a.raised_at, tz)} ({format_age(a.raised_at, now)})",
        f"updated {format_time(a.updated_at, tz)}",
        f"{a.occurrences}x",
    ]
    if a.metric is not None and a.value is not None:
        facts.append(f"{a.metric} = {format_number(a.value)}")
    if a.cleared_at is not None:
        facts.append(
            f"cleared {format_time(a.cleared_at, tz)}"
            + (f" by {a.cleared_by}" if a.cleared_by else "")
        )
    return " · ".join(facts)
