"""Maintenance windows, pure (`hub.alarms.windows`): when one is active, what it covers, and
what an admin may write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.alarms.windows import (
    DeviceRef,
    MaintenanceWindow,
    Once,
    Scope,
    Weekly,
    WindowSpec,
    active_until,
    covering,
    parse_spec,
)

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = 60_000
HOUR = 60 * MINUTE


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: Any = UTC) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=tz).timestamp() * 1000)


def window(
    name: str = "w", schedule: Once | Weekly | None = None, suppress: Any = "alerts", **scope: Any
) -> MaintenanceWindow:
    spec = WindowSpec(
        name=name,
        suppress=suppress,
        schedule=schedule or Once(0, 10**13),
        scope=Scope(**{k: tuple(v) for k, v in scope.items()}),
    )
    return MaintenanceWindow(1, spec, "admin", 0, "admin", 0)


# -- once --------------------------------------------------------------------------------------


def test_a_one_off_window_includes_its_start_and_excludes_its_end() -> None:
    once = Once(1000, 2000)
    assert active_until(once, 999) is None
    assert active_until(once, 1000) == 2000
    assert active_until(once, 1999) == 2000
    assert active_until(once, 2000) is None


# -- weekly ------------------------------------------------------------------------------------


def test_a_weekly_window_runs_on_its_weekdays_at_local_time() -> None:
    # Mondays and Wednesdays 08:00-10:00 Berlin (UTC+1 in January).
    weekly = Weekly((0, 2), "08:00", 120, "Europe/Berlin")
    monday = (2026, 1, 5)
    assert datetime(*monday).weekday() == 0
    assert active_until(weekly, ms(*monday, 7, 59, BERLIN)) is None
    assert active_until(weekly, ms(*monday, 8, 0, BERLIN)) == ms(*monday, 10, 0, BERLIN)
    assert active_until(weekly, ms(*monday, 9, 59, BERLIN)) == ms(*monday, 10, 0, BERLIN)
    assert active_until(weekly, ms(*monday, 10, 0, BERLIN)) is None
    assert active_until(weekly, ms(2026, 1, 6, 9, 0, BERLIN)) is None  # Tuesday
    assert active_until(weekly, ms(2026, 1, 7, 9, 0, BERLIN)) == ms(2026, 1, 7, 10, 0, BERLIN)
    # 08:30 Berlin is 07:30 UTC: the time zone is applied.
    assert active_until(weekly, ms(*monday, 7, 30)) is not None
    assert active_until(weekly, ms(*monday, 6, 30)) is None


def test_a_weekly_window_crosses_midnight_into_the_next_day() -> None:
    # Fridays 22:00 for 8 h: active on Saturday 05:59, over at 06:00; not Friday morning.
    weekly = Weekly((4,), "22:00", 480, "Europe/Berlin")
    assert datetime(2026, 1, 9).weekday() == 4
    assert active_until(weekly, ms(2026, 1, 9, 21, 59, BERLIN)) is None
    assert active_until(weekly, ms(2026, 1, 9, 23, 0, BERLIN)) == ms(2026, 1, 10, 6, 0, BERLIN)
    assert active_until(weekly, ms(2026, 1, 10, 5, 59, BERLIN)) == ms(2026, 1, 10, 6, 0, BERLIN)
    assert active_until(weekly, ms(2026, 1, 10, 6, 0, BERLIN)) is None
    assert active_until(weekly, ms(2026, 1, 9, 3, 0, BERLIN)) is None


def test_a_week_long_window_on_sunday_spans_the_week() -> None:
    weekly = Weekly((6,), "00:00", 7 * 24 * 60 - 1, "UTC")
    sunday = ms(2026, 1, 11)
    assert active_until(weekly, sunday + 6 * 24 * HOUR) == sunday + 7 * 24 * HOUR - MINUTE
    assert active_until(weekly, sunday + 7 * 24 * HOUR - MINUTE) is None
    assert active_until(weekly, sunday + 7 * 24 * HOUR) is not None  # the next Sunday's


def test_daylight_saving_keeps_the_local_start_time() -> None:
    # Sundays 03:00 Berlin for 60 min: 02:00 UTC in winter, 01:00 UTC in summer.
    weekly = Weekly((6,), "03:00", 60, "Europe/Berlin")
    assert active_until(weekly, ms(2026, 3, 22, 2, 30)) == ms(2026, 3, 22, 3, 0)  # CET
    assert active_until(weekly, ms(2026, 3, 29, 1, 30)) == ms(2026, 3, 29, 2, 0)  # CEST
    assert active_until(weekly, ms(2026, 3, 29, 2, 30)) is None


def test_a_start_time_the_clocks_skip_begins_an_hour_later_in_wall_time() -> None:
    # 2026-03-29 02:30 does not exist in Berlin (02:00 -> 03:00): the window starts at 03:30
    # CEST (01:30 UTC), the instant 02:30 CET would have been; the duration is elapsed time.
    weekly = Weekly((6,), "02:30", 60, "Europe/Berlin")
    assert active_until(weekly, ms(2026, 3, 29, 1, 29)) is None
    assert active_until(weekly, ms(2026, 3, 29, 1, 30)) == ms(2026, 3, 29, 2, 30)


def test_a_start_time_that_happens_twice_begins_at_the_first() -> None:
    # 2026-10-25 02:30 happens twice in Berlin (CEST 00:30 UTC, then CET 01:30 UTC).
    weekly = Weekly((6,), "02:30", 30, "Europe/Berlin")
    assert active_until(weekly, ms(2026, 10, 25, 0, 30)) == ms(2026, 10, 25, 1, 0)
    assert active_until(weekly, ms(2026, 10, 25, 1, 30)) is None


def test_a_night_window_over_the_autumn_change_lasts_its_elapsed_duration() -> None:
    # Saturday 22:00 Berlin for 8 h over the night the clocks go back: ends 05:00 wall time.
    weekly = Weekly((5,), "22:00", 480, "Europe/Berlin")
    start = ms(2026, 10, 24, 22, 0, BERLIN)
    assert active_until(weekly, start) == start + 8 * HOUR
    assert active_until(weekly, start + 8 * HOUR) is None
    assert datetime.fromtimestamp((start + 8 * HOUR) / 1000, BERLIN).hour == 5


# -- scope -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "covered"),
    [
        ({"devices": ["d1"]}, True),
        ({"devices": ["d2"]}, False),
        ({"sites": ["plant-a"]}, True),
        ({"sites": ["plant-b"]}, False),
        ({"device_types": ["pump"]}, True),
        ({"device_types": ["boiler"]}, False),
        ({"gateways": ["gw1"]}, True),
        ({"gateways": ["gw2"], "sites": ["plant-b"]}, False),
        ({"gateways": ["gw2"], "sites": ["plant-a"]}, True),  # any listed attribute
    ],
)
def test_a_scope_covers_a_device_if_any_of_its_own_is_listed(
    scope: dict[str, list[str]], covered: bool
) -> None:
    ref = DeviceRef("d1", "gw1", "plant-a", "pump")
    assert window("w", None, "alerts", **scope).covers(ref) is covered


def test_a_gateways_own_alert_is_covered_by_its_gateway_only() -> None:
    gateway_alert = DeviceRef(None, "gw1")
    assert window(gateways=["gw1"]).covers(gateway_alert)
    assert not window(sites=["plant-a"], devices=["gw1"]).covers(gateway_alert)


def test_covering_picks_active_windows_that_suppress_enough() -> None:
    ref = DeviceRef("d1", "gw1", "plant-a", "pump")
    windows = [
        window("b-notify", suppress="notifications", devices=["d1"]),
        window("a-alerts", devices=["d1"]),
        window("past", Once(0, 1000), devices=["d1"]),
        window("other", devices=["d9"]),
    ]
    names = [w.name for w in covering(windows, ref, 5000)]
    assert names == ["a-alerts", "b-notify"]
    assert [w.name for w in covering(windows, ref, 5000, suppress="alerts")] == ["a-alerts"]


# -- checking input ------------------------------------------------------------------------------


def good() -> dict[str, Any]:
    return {
        "name": "Line 3 overhaul",
        "suppress": "alerts",
        "schedule": {
            "kind": "weekly",
            "weekdays": [2, 0, 2],
            "start": "22:00",
            "duration_minutes": 240,
            "timezone": "Europe/Berlin",
        },
        "scope": {"sites": ["plant-a"], "devices": ["d2", "d1"]},
        "comment": "  ",
    }


def test_a_good_window_is_parsed_and_normalised() -> None:
    spec = parse_spec(good())
    assert spec.name == "Line 3 overhaul"
    assert spec.schedule == Weekly((0, 2), "22:00", 240, "Europe/Berlin")
    assert spec.scope == Scope(sites=("plant-a",), devices=("d1", "d2"))
    assert spec.comment is None
    assert parse_spec(spec.to_json()) == spec


def test_a_one_off_window_is_parsed() -> None:
    data = {**good(), "schedule": {"kind": "once", "start": 1000, "end": 2000}}
    assert parse_spec(data).schedule == Once(1000, 2000)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("name",), "  ", "name"),
        (("name",), "x" * 101, "name"),
        (("suppress",), "everything", "suppress"),
        (("schedule", "kind"), "daily", "schedule.kind"),
        (("schedule", "weekdays"), [], "schedule.weekdays"),
        (("schedule", "weekdays"), [7], "schedule.weekdays"),
        (("schedule", "weekdays"), [True], "schedule.weekdays"),
        (("schedule", "start"), "24:00", "schedule.start"),
        (("schedule", "start"), "8:00", "schedule.start"),
        (("schedule", "duration_minutes"), 0, "schedule.duration_minutes"),
        (("schedule", "duration_minutes"), 7 * 24 * 60 + 1, "schedule.duration_minutes"),
        (("schedule", "timezone"), "Mars/Olympus", "schedule.timezone"),
        (("schedule", "timezone"), "", "schedule.timezone"),
        (("schedule", "every"), 2, "schedule.every"),
        (("scope", "sites"), "plant-a", "scope.sites"),
        (("scope", "devices"), [""], "scope.devices"),
        (("scope", "areas"), ["x"], "scope.areas"),
        (("colour",), "red", "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    path: tuple[str, ...], value: object, field: str
) -> None:
    data = good()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        parse_spec(data)


def test_an_empty_scope_is_refused() -> None:
    data = {**good(), "scope": {"sites": [], "devices": []}}
    with pytest.raises(ValueError, match="scope must list at least one"):
        parse_spec(data)


def test_a_one_off_window_must_end_after_it_starts() -> None:
    data = {**good(), "schedule": {"kind": "once", "start": 2000, "end": 2000}}
    with pytest.raises(ValueError, match=r"schedule\.end must be after schedule\.start"):
        parse_spec(data)
    data["schedule"] = {"kind": "once", "start": "yesterday", "end": 2000}
    with pytest.raises(ValueError, match=r"schedule\.start must be epoch milliseconds"):
        parse_spec(data)


def test_to_json_says_whether_and_until_when_active() -> None:
    w = window(schedule=Once(1000, 2000), devices=["d1"])
    assert w.to_json(1500)["active"] is True
    assert w.to_json(1500)["active_until"] == 2000
    assert w.to_json(2500)["active"] is False
    assert "active" not in w.to_json()
