"""The pages' pure helpers: numbers, ages, local times, ranges, sparklines, CSV. No services."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest

from hub.web.model import Page, Series
from hub.web.pages.session import safe_redirect
from hub.web.views.export import csv_export, safe_filename
from hub.web.views.figure import marker_text, metric_figure
from hub.web.views.numbers import format_age, format_page, format_value, is_flag, unit_of
from hub.web.views.spark import SparkBuffer, spark_metric, spark_points
from hub.web.views.times import DAY_MS, parse_local, plot_x, plot_xs, time_range, zone
from iot_common.humanize import human_bytes

T0 = 1_764_268_800_000  # 2025-11-27T18:40:00Z
BERLIN = ZoneInfo("Europe/Berlin")


def test_values_read_at_a_glance() -> None:
    assert format_value(61.234, "°C") == "61.23 °C"
    assert format_value(23_456.0, "rpm") == "23,456 rpm"
    assert format_value(123.456) == "123.5"
    assert format_value(0.01234) == "0.0123"
    assert format_value(True) == "yes"
    assert format_value(0.0, flag=True) == "no"
    assert unit_of("cnc_spindle", "spindle_temp_c") == "°C"
    assert unit_of("cnc_spindle", "running") == ""
    assert unit_of(None, "whatever") == ""
    assert is_flag("conveyor", "jammed")
    assert not is_flag("conveyor", "motor_current_a")
    assert is_flag(None, "door_open", True)
    assert human_bytes(5 << 20) == "5.0 MiB"  # a gateway's backlog, as `iot-edge status` says
    assert human_bytes(12) == "12 B"


def test_list_counts() -> None:
    assert format_page(Page(items=[1, 2, 3], total=3, limit=100, offset=0), "device") == (
        "3 devices"
    )
    assert format_page(Page(items=[1], total=1, limit=100, offset=0), "alert") == "1 alert"
    assert format_page(Page(items=[], total=0, limit=100, offset=0), "alert") == "0 alerts"
    assert format_page(Page(items=[1] * 100, total=250, limit=100, offset=100), "device") == (
        "101-200 of 250 devices"
    )


def test_ages() -> None:
    assert format_age(None, T0) == "never"
    assert format_age(T0 - 12_000, T0) == "12 s ago"
    assert format_age(T0 - 5 * 60_000, T0) == "5 min ago"
    assert format_age(T0 - 3 * 3_600_000, T0) == "3 h ago"
    assert format_age(T0 - 2 * DAY_MS, T0) == "2 d ago"
    assert format_age(T0 + 5000, T0) == "0 s ago"  # a device clock ahead of ours


def test_local_times_for_charts_and_inputs() -> None:
    assert plot_x(T0, BERLIN) == "2025-11-27 19:40:00.000"
    assert plot_xs([T0, T0 + 1], ZoneInfo("UTC")) == [
        "2025-11-27 18:40:00.000",
        "2025-11-27 18:40:00.001",
    ]
    assert plot_xs([T0], BERLIN) == [plot_x(T0, BERLIN)]
    assert parse_local("2025-11-27T19:40", BERLIN) == T0
    assert parse_local("2025-11-27T18:40:00+00:00", BERLIN) == T0
    with pytest.raises(ValueError, match="not a date"):
        parse_local("yesterday", BERLIN)
    assert zone("Not/AZone").key == "UTC"
    assert zone(None).key == "UTC"
    assert zone("Europe/Berlin") == BERLIN


def test_time_ranges() -> None:
    live = time_range("live", T0)
    assert (live.start, live.end, live.live) == (T0 - 15 * 60_000, T0, True)
    assert time_range("7 days", T0).start == T0 - 7 * DAY_MS
    assert time_range("1 year", T0).start == T0 - 365 * DAY_MS
    custom = time_range(
        "custom", T0, custom_start="2025-11-27T18:00", custom_end="2025-11-27T19:40", tz=BERLIN
    )
    assert (custom.start, custom.end) == (T0 - 40 * 60_000 - 3_600_000, T0)
    with pytest.raises(ValueError, match="before the end"):
        time_range("custom", T0, custom_start="2025-11-28T00:00", custom_end="2025-11-27T00:00")
    with pytest.raises(ValueError, match="at most 3660 days"):
        time_range("custom", T0, custom_start="2015-01-01T00:00", custom_end="2025-11-27T00:00")
    with pytest.raises(ValueError, match="needs a start"):
        time_range("custom", T0)
    with pytest.raises(ValueError, match="unknown range"):
        time_range("forever", T0)


def test_sparklines() -> None:
    assert spark_metric("cnc_spindle", ("running", "spindle_load_pct"), {}) == "spindle_load_pct"
    assert spark_metric("lathe", ("on", "temp"), {"on": True, "temp": 3.0}) == "temp"
    assert spark_metric("lathe", ("on",), {"on": True}) is None
    points = spark_points([T0 - 60_000, T0 - 30_000, T0], [1.0, 3.0, 2.0], end=T0, window_ms=60_000)
    assert points == "0.0,26.0 60.0,2.0 120.0,14.0"  # min at the bottom, max at the top
    assert spark_points([T0], [5.0], end=T0, window_ms=60_000) == "120.0,14.0"  # flat: mid
    assert spark_points([T0 - 120_000], [5.0], end=T0, window_ms=60_000) == ""  # too old
    buffer = SparkBuffer(window_ms=60_000, points=2)
    buffer.extend([T0 - 50_000, T0 - 40_000], [1.0, 9.0])  # one bucket: the later value wins
    buffer.add(T0 - 45_000, 5.0)  # older than what the bucket holds: ignored
    buffer.add(T0, 4.0)
    assert buffer.points(T0) == "40.0,2.0 120.0,26.0"
    assert buffer.points(T0 + 200_000) == ""  # everything aged out


def test_csv_export_quotes_formulas_and_uses_utc() -> None:
    series = Series(
        device_id="=HYPERLINK(1)",
        metric="temp",
        source="raw",
        start=T0,
        end=T0 + 2,
        ts=[T0, T0 + 1],
        values=[1.5, 2.0],
        downsampled=False,
    )
    rows = list(csv.reader(io.StringIO(csv_export([series]).decode())))
    assert rows[0] == ["device_id", "metric", "time_utc", "ts_ms", "value"]
    assert rows[1] == ["'=HYPERLINK(1)", "temp", "2025-11-27T18:40:00.000Z", str(T0), "1.5"]
    assert len(rows) == 3
    assert safe_filename("<script>/x", "24 h") == "script-x_24-h"


def test_alert_marker_text_is_escaped_and_figure_places_markers() -> None:
    alert = {
        "severity": "critical",
        "state": "active",
        "message": "<img src=x onerror=alert(1)>",
        "metric": "temp",
        "value": 91.0,
    }
    assert "<" not in marker_text(alert)
    assert "&lt;img" in marker_text(alert)
    figure = metric_figure(
        metric="temp",
        unit="°C",
        flag=False,
        xs=["2025-11-27 18:40:00.000"],
        values=[1.0],
        alerts=[],
        tz=BERLIN,
        x_range=("a", "b"),
    )
    assert figure["layout"]["xaxis"]["range"] == ["a", "b"]
    assert [t["name"] for t in figure["data"]] == ["temp", "warning alerts", "critical alerts"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/alerts?status=all", "/alerts?status=all"),
        ("/device/cnc-01", "/device/cnc-01"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/login?redirect_to=/", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_redirects_stay_on_this_site(target: str | None, expected: str) -> None:
    assert safe_redirect(target) == expected


def test_latest_values_follow_the_catalogue() -> None:
    from hub.web.views.numbers import metric_value

    assert metric_value("cnc_spindle", "spindle_temp_c", 61.25) == "61.2 °C"
    assert metric_value("cnc_spindle", "spindle_speed_rpm", 10389.4) == "10,389 rpm"
    assert metric_value("cleanroom_env", "occupancy_persons", 3.0) == "3 persons"
    assert metric_value("conveyor", "jammed", 1.0) == "yes"
    assert metric_value("lathe", "temp", 21.456) == "21.46"
    assert metric_value("lathe", "door_open", False) == "no"
