"""Which routes an alert matches, which channels each tells and when: grouping, repeats and
escalation. Pure: times are epoch ms passed in.

* Every matching route applies; a channel named by several of them is told once per transition.
* Grouping (`group_slot`): the first transition of a (route, channel) goes at once and opens a
  window; those arriving inside it wait for its end and go together in one message, which
  opens the next window. So a storm costs one message per window, a lone alert no delay.
* A route's `Schedule` per alert: how many of its channel tiers were told (escalation), and
  when the alert is next repeated. It stops once the alert is cleared or acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hub.notify.config import NotificationConfig, Route, RouteMatch

__all__ = [
    "AlertFacts",
    "Due",
    "Schedule",
    "delivery_key",
    "due_actions",
    "group_slot",
    "matches",
    "matching_routes",
    "resolved_channels",
    "start_schedule",
]


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What routes match on."""

    severity: str
    rule: str
    device_id: str | None
    site: str | None
    device_type: str | None


def _accepts(allowed: list[str] | None, value: str | None) -> bool:
    return allowed is None or (value is not None and value in allowed)


def matches(match: RouteMatch, facts: AlertFacts) -> bool:
    return (
        _accepts(list(match.severity) if match.severity else None, facts.severity)
        and _accepts(match.site, facts.site)
        and _accepts(match.device_type, facts.device_type)
        and _accepts(match.device, facts.device_id)
        and _accepts(match.rule, facts.rule)
    )


def matching_routes(config: NotificationConfig, facts: AlertFacts) -> list[Route]:
    return [r for r in config.routes if matches(r.match, facts)]


def first_tell(routes: list[Route]) -> list[tuple[Route, str]]:
    """(route, channel) to tell of a new alert: each channel once, by the first route naming it."""
    seen: set[str] = set()
    out = []
    for route in routes:
        for channel in route.initial_channels():
            if channel not in seen:
                seen.add(channel)
                out.append((route, channel))
    return out


def group_slot(now_ms: int, last_due_ms: int | None, window_ms: int) -> int:
    """When to send a transition of a group arriving at ``now_ms``, given when the group's
    latest message is (or was) due: with it if still to come, else at once if the window since
    has passed, else at the window's end. The result is the group's new latest due time."""
    if last_due_ms is None or now_ms >= last_due_ms + window_ms:
        return now_ms
    if now_ms <= last_due_ms:
        return last_due_ms
    return last_due_ms + window_ms


def delivery_key(alert_id: int, what: str, channel: str) -> str:
    """The stable idempotency key of one notification: ``what`` names the transition (its
    outbox id) or the repeat or escalation step, so a retry or a second worker reuses it."""
    return f"alert-{alert_id}.{what}.{channel}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """One route's pacing of one alert: tiers told so far (1 = the first channel, or all of
    them without escalation), next escalation and repeat (None: none due)."""

    tiers: int
    repeats: int
    next_escalation_ms: int | None
    next_repeat_ms: int | None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def start_schedule(route: Route, now_ms: int) -> Schedule:
    escalating = route.escalate_after_s is not None and len(route.channels) > 1
    return Schedule(
        tiers=1 if escalating else len(route.channels),
        repeats=0,
        next_escalation_ms=(
            now_ms + _ms(route.escalate_after_s)
            if escalating and route.escalate_after_s is not None
            else None
        ),
        next_repeat_ms=now_ms + _ms(route.repeat_interval_s) if route.repeat_interval_s else None,
    )


def told(route: Route, schedule: Schedule) -> list[str]:
    """The route's channels told of the alert so far."""
    if route.escalate_after_s is None:
        return list(route.channels)
    return route.channels[: schedule.tiers]


@dataclass(frozen=True, slots=True)
class Due:
    """Notifications a schedule owes now: ``event`` to ``channels``, keyed by ``step``."""

    event: str  # "escalation" or "repeat"
    step: str
    channels: list[str]


def due_actions(
    route: Route, schedule: Schedule, now_ms: int, *, active: bool, acknowledged: bool
) -> tuple[list[Due], Schedule]:
    """What is owed at ``now_ms`` and the schedule after it. A cleared or acknowledged alert
    owes nothing more, ever (its schedule stops: both next times None)."""
    if not active or acknowledged:
        return [], replace(schedule, next_escalation_ms=None, next_repeat_ms=None)
    owed: list[Due] = []
    tiers, repeats = schedule.tiers, schedule.repeats
    next_escalation, next_repeat = schedule.next_escalation_ms, schedule.next_repeat_ms
    if (
        next_escalation is not None
        and now_ms >= next_escalation
        and route.escalate_after_s is not None
        and tiers < len(route.channels)
    ):
        tiers += 1
        owed.append(Due("escalation", f"escalation{tiers}", [route.channels[tiers - 1]]))
        more = tiers < len(route.channels)
        next_escalation = now_ms + _ms(route.escalate_after_s) if more else None
    if next_repeat is not None and now_ms >= next_repeat and route.repeat_interval_s:
        repeats += 1
        channels = told(route, replace(schedule, tiers=tiers))
        if owed:  # the tier just escalated to is told once, by the escalation
            channels = channels[:-1]
        if channels:
            owed.append(Due("repeat", f"repeat{repeats}", channels))
        next_repeat = now_ms + _ms(route.repeat_interval_s)
    return owed, Schedule(tiers, repeats, next_escalation, next_repeat)


def resolved_channels(route: Route, schedule: Schedule) -> list[str]:
    """Who hears of the clear: every channel of the route told of the alert."""
    return told(route, schedule)


def next_due_ms(schedule: Schedule) -> int | None:
    times = [t for t in (schedule.next_escalation_ms, schedule.next_repeat_ms) if t is not None]
    return min(times) if times else None
