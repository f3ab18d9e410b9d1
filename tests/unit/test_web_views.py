"""The overview's UI-free logic (hub/web/views/overview.py, pacing.py, links.py): rows merge
database views and live readings whichever comes first, unlisted devices are matched against
the filter, lists re-read on their pace."""

from __future__ import annotations

import pytest

from hub.web.model import DeviceFilter, DeviceView, LiveReading, Series
from hub.web.views.links import device_href
from hub.web.views.overview import RowState, by_device, could_match
from hub.web.views.pacing import RefreshPacing
from hub.web.views.sources import source_label


def view(last_seen: int | None, latest_ts: int | None, **latest: float | bool) -> DeviceView:
    return DeviceView(
        "cnc-01", "s1", "cnc_spindle", "gw-1", "online", last_seen, tuple(sorted(latest)),
        dict(latest), latest_ts, 0, None,
    )  # fmt: skip


def reading(ts: int, device: str = "cnc-01", **metrics: float | bool) -> LiveReading:
    return LiveReading("s1", device, "cnc_spindle", ts, None, metrics)


def test_a_view_older_than_what_the_row_shows_changes_nothing() -> None:
    state = RowState.of(view(1_000, 1_000, temp=1.0))
    assert state.merge_readings([reading(2_000, temp=2.0)]) == {"temp": 2.0}
    assert state.merge_view(view(1_500, 1_500, temp=1.5)) == {}
    assert (state.last_seen, state.latest_ts) == (2_000, 2_000)
    assert state.merge_view(view(3_000, 3_000, temp=3.0)) == {"temp": 3.0}
    assert (state.last_seen, state.latest_ts) == (3_000, 3_000)


def test_readings_give_the_newest_value_of_each_metric_and_skip_late_ones() -> None:
    state = RowState(last_seen=None, latest_ts=None)
    newest = state.merge_readings(
        [reading(1, temp=1.0, load=1.0), reading(3, temp=3.0), reading(2, temp=2.0)]
    )
    assert newest == {"temp": 3.0, "load": 1.0}
    assert (state.last_seen, state.latest_ts) == (3, 3)
    assert state.merge_readings([reading(2, load=9.0)]) == {}


def test_a_view_without_values_or_timestamps_keeps_the_row() -> None:
    state = RowState(last_seen=5, latest_ts=5)
    assert state.merge_view(view(None, None)) == {}
    assert state.last_seen == 5


def test_readings_grouped_by_device_in_arrival_order() -> None:
    a1, b1, a2 = reading(1, "a"), reading(2, "b"), reading(3, "a")
    assert by_device([a1, b1, a2]) == {"a": [a1, a2], "b": [b1]}


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (DeviceFilter(), True),
        (DeviceFilter(site="s1", type="cnc_spindle", search="CNC"), True),
        (DeviceFilter(state="online"), True),
        (DeviceFilter(state="offline"), False),
        (DeviceFilter(site="s2"), False),
        (DeviceFilter(type="conveyor"), False),
        (DeviceFilter(search="press"), False),
    ],
)
def test_an_unlisted_device_could_match_the_filter(f: DeviceFilter, expected: bool) -> None:
    assert could_match(f, reading(1, "cnc-01")) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_list_refreshes_on_its_pace_and_soon_after_news() -> None:
    clock = Clock()
    pacing = RefreshPacing(every_s=10.0, soon_s=2.0, clock=clock)
    clock.now += 1.9
    assert not pacing.refresh_due()
    pacing.want()
    assert not pacing.refresh_due()  # soon, but not more often than every 2 s
    clock.now += 0.1
    assert pacing.refresh_due()
    pacing.refreshed()
    clock.now += 9.9
    assert not pacing.refresh_due()
    clock.now += 0.1
    assert pacing.refresh_due()


def test_ages_are_redrawn_once_a_second() -> None:
    clock = Clock()
    pacing = RefreshPacing(every_s=10.0, soon_s=2.0, clock=clock)
    assert pacing.tick_due()
    clock.now += 0.5
    assert not pacing.tick_due()
    clock.now += 0.5
    assert pacing.tick_due()


def test_device_links_quote_the_whole_id() -> None:
    assert device_href("line 1/cnc#2") == "/device/line%201%2Fcnc%232"


def test_an_alerts_facts_in_one_line() -> None:
    from zoneinfo import ZoneInfo

    from hub.storage.model import AlertRow
    from hub.web.views.alerts import alert_facts

    fields = {f: None for f in AlertRow.__dataclass_fields__}
    row = AlertRow(**{  # type: ignore[arg-type]
        **fields, "id": 1, "raised_at": 0, "updated_at": 60_000, "occurrences": 3,
        "metric": "temp_c", "value": 81.25, "cleared_at": 120_000, "cleared_by": "ana",
    })  # fmt: skip
    text = alert_facts(row, ZoneInfo("UTC"), now=180_000)
    assert text == (
        "raised 1970-01-01 00:00:00 (3 min ago) · updated 1970-01-01 00:01:00 · 3x · "
        "temp_c = 81.25 · cleared 1970-01-01 00:02:00 by ana"
    )


def test_a_gateways_runway_in_words() -> None:
    from hub.web.views.gateways import runway_alarming, runway_text

    assert runway_text(None, online=True) == "runway: buffer not growing"
    assert runway_text(2520.0, online=True) == "runway: full in 42 min"
    assert runway_text(0.0, online=True) == "runway: FULL, dropping oldest"
    assert runway_text(2520.0, online=False) == "runway: full in 42 min (at last heartbeat)"
    assert runway_alarming(10.0)
    assert not runway_alarming(None)


def _series(source: str) -> Series:
    return Series("d", "m", source, 0, 1, [], [], False)  # type: ignore[arg-type]


def test_the_status_line_names_the_coarsest_source() -> None:
    assert source_label([]) == "raw readings"
    assert source_label([_series("raw"), _series("1m")]) == "1-minute rollups"
    assert source_label([_series("1d"), _series("1h")]) == "daily rollups"
    assert source_label([_series("1h")]) == "hourly rollups"


def test_connector_lines_on_the_gateway_card() -> None:
    from hub.web.views.gateways import connector_lines, connectors_alarming
    from protocol.models import ConnectorMetrics

    up = ConnectorMetrics(name="cnc", kind="opcua", connected=True, values_rate=12.5)
    down = ConnectorMetrics(
        name="plc",
        kind="modbus",
        connected=False,
        values_rate=0.0,
        errors={"timeout": 1200, "connect_failed": 3},
        last_error="connect_failed: cannot connect to 10.0.0.5:502",
    )
    assert connector_lines(None) == []
    assert connector_lines([up, down]) == [
        "opcua cnc: up, 12.5 values/s",
        "modbus plc: DOWN, 0 values/s · connect_failed 3, timeout 1,200 "
        "(connect_failed: cannot connect to 10.0.0.5:502)",
    ]
    assert not connectors_alarming([up])
    assert connectors_alarming([up, down])
