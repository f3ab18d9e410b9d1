"""Route matching, grouping, repeats, escalation and the resolved message's recipients."""

from __future__ import annotations

from hub.notify.config import NotificationConfig, Route, RouteMatch, parse_config
from hub.notify.routing import (
    AlertFacts,
    Schedule,
    due_actions,
    first_tell,
    group_slot,
    matches,
    matching_routes,
    resolved_channels,
    start_schedule,
)

MIN = 60_000
FACTS = AlertFacts(
    severity="critical", rule="temp_high", device_id="d1", site="plant-1", device_type="sensor"
)


def _config() -> NotificationConfig:
    hooks = [{"name": n, "type": "webhook", "url": f"http://h/{n}"} for n in ("a", "b", "c")]
    return parse_config(
        {
            "channels": hooks,
            "routes": [
                {"name": "crit", "match": {"severity": ["critical"]}, "channels": ["a", "b"]},
                {"name": "plant2", "match": {"site": ["plant-2"]}, "channels": ["c"]},
                {
                    "name": "temp",
                    "match": {"rule": ["temp_high"], "device": ["d1", "d2"]},
                    "channels": ["b", "c"],
                },
            ],
        }
    )


def test_every_key_must_match_and_each_lists_alternatives() -> None:
    config = _config()
    assert [r.name for r in matching_routes(config, FACTS)] == ["crit", "temp"]
    warning = AlertFacts("warning", "temp_high", "d3", "plant-2", None)
    assert [r.name for r in matching_routes(config, warning)] == ["plant2"]
    route = Route(match=RouteMatch(device_type=["sensor"]), channels=["a"])
    assert matches(route.match, FACTS)
    # A device of unknown type does not match a route asking for a type.
    assert not matches(route.match, AlertFacts("critical", "r", "d", "s", None))
    assert matches(Route(channels=["a"]).match, AlertFacts("warning", "r", None, None, None))


def test_a_channel_is_told_once_per_transition() -> None:
    routes = matching_routes(_config(), FACTS)
    assert [(r.name, c) for r, c in first_tell(routes)] == [
        ("crit", "a"),
        ("crit", "b"),
        ("temp", "c"),
    ]


def test_grouping_sends_the_first_at_once_and_batches_the_rest() -> None:
    window = 30_000
    first = group_slot(1_000, None, window)
    assert first == 1_000
    batch = group_slot(5_000, first, window)
    assert batch == 31_000  # inside the window: waits for its end
    assert group_slot(20_000, batch, window) == batch  # joins the batch still to come
    assert group_slot(31_000, batch, window) == batch
    later = group_slot(40_000, batch, window)
    assert later == 61_000  # the batch at 31 s opened the next window
    assert group_slot(61_000 + window, later, window) == 91_000  # quiet since: at once again
    assert group_slot(7, 5, 0) == 7  # no window: never waits


def _escalating(repeat_s: float = 0) -> Route:
    return Route(
        name="esc", channels=["a", "b", "c"], escalate_after_s=600, repeat_interval_s=repeat_s
    )


def test_escalation_tells_the_next_tier_while_unacknowledged() -> None:
    route = _escalating()
    schedule = start_schedule(route, 0)
    assert schedule.tiers == 1
    assert schedule.next_escalation_ms == 10 * MIN
    owed, schedule = due_actions(route, schedule, 9 * MIN, active=True, acknowledged=False)
    assert owed == []
    owed, schedule = due_actions(route, schedule, 10 * MIN, active=True, acknowledged=False)
    assert [(d.event, d.channels) for d in owed] == [("escalation", ["b"])]
    assert schedule.next_escalation_ms == 20 * MIN
    owed, schedule = due_actions(route, schedule, 20 * MIN, active=True, acknowledged=False)
    assert [(d.event, d.channels) for d in owed] == [("escalation", ["c"])]
    assert schedule.next_escalation_ms is None  # no tier left
    assert resolved_channels(route, schedule) == ["a", "b", "c"]


def test_acknowledging_stops_escalation_and_repeats() -> None:
    route = _escalating(repeat_s=3600)
    schedule = start_schedule(route, 0)
    owed, stopped = due_actions(route, schedule, 10 * MIN, active=True, acknowledged=True)
    assert owed == []
    assert stopped.next_escalation_ms is None
    assert stopped.next_repeat_ms is None
    assert resolved_channels(route, stopped) == ["a"]  # only the first tier heard of it
    owed, _ = due_actions(route, schedule, 10 * MIN, active=False, acknowledged=False)
    assert owed == []


def test_repeat_tells_the_channels_told_so_far() -> None:
    route = Route(name="r", channels=["a", "b"], repeat_interval_s=4 * 3600)
    schedule = start_schedule(route, 0)
    owed, schedule = due_actions(route, schedule, 4 * 3600_000 - 1, active=True, acknowledged=False)
    assert owed == []
    owed, schedule = due_actions(route, schedule, 4 * 3600_000, active=True, acknowledged=False)
    assert [(d.event, d.step, d.channels) for d in owed] == [("repeat", "repeat1", ["a", "b"])]
    assert schedule.next_repeat_ms == 8 * 3600_000
    owed, _ = due_actions(route, schedule, 8 * 3600_000, active=True, acknowledged=False)
    assert [d.step for d in owed] == ["repeat2"]
    never = Route(name="n", channels=["a"], repeat_interval_s=0)
    assert start_schedule(never, 0) == Schedule(1, 0, None, None)


def test_an_escalation_and_a_repeat_at_once_tell_each_channel_once() -> None:
    route = Route(name="r", channels=["a", "b"], escalate_after_s=60, repeat_interval_s=60)
    owed, _ = due_actions(route, start_schedule(route, 0), MIN, active=True, acknowledged=False)
    assert [(d.event, d.channels) for d in owed] == [("escalation", ["b"]), ("repeat", ["a"])]
