"""`/device/{device_id}`: a Plotly chart per metric over a chosen time range, live by default.

Ranges: live (the last 15 minutes, then every reading appended within a tick of its arrival),
15 min, 1 h, 24 h, 7 days, 30 days, 90 days, 1 year and custom. Each range is read with
`ReadModel.series`, which picks raw readings or a rollup tier (1-minute, hourly, daily: the
status line names it) and downsamples, keeping minima and maxima, to `max_points`:
the chart's width in pixels as the browser reports it. Alert markers come from
`ReadModel.alert_markers` and, live, from the alert events. "CSV" downloads the points shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.metadata.model import MetadataDoc, MetricMeta
from hub.web.container import WebServices
from hub.web.model import DeviceView, LiveReading, Series
from hub.web.pages import session
from hub.web.pages.alarm_widgets import window_banner
from hub.web.pages.charts import MetricChart
from hub.web.pages.layout import PageFrame, page_frame
from hub.web.views.export import csv_export, safe_filename
from hub.web.views.links import device_href
from hub.web.views.numbers import described_value, format_age, is_flag, unit_of
from hub.web.views.sources import source_label
from hub.web.views.times import (
    CUSTOM,
    LIVE,
    RANGE_CHOICES,
    TimeRange,
    format_time,
    input_value,
    now_ms,
    time_range,
)

__all__ = ["DevicePage", "register"]

log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS: Final = 1200
MIN_MAX_POINTS: Final = 200
MAX_MAX_POINTS: Final = 3000
LIVE_KEEP_POINTS: Final = 3600  # a live chart keeps at most this many points (an hour at 1 Hz)
HEADER_REFRESH_S: Final = 10.0
TWO_COLUMNS_PX: Final = 1280  # Tailwind's xl: the charts sit two abreast from here on
_WIDTH_JS: Final = "return window.innerWidth"


def place_label(site: str, meta: MetadataDoc) -> str:
    """`site plant-a > Forming > Line 2 > P-100`: the device's place in the asset hierarchy."""
    levels = [meta.area, meta.line, meta.machine]
    return " > ".join([f"site {site}", *(level for level in levels if level)])


def register(services: WebServices) -> None:
    @ui.page("/device/{device_id:path}", title="Device · IoT Hub")
    async def device_page(
        request: Request, device_id: str, range: str = LIVE
    ) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        device = await services.reads.device(device_id)
        frame = await page_frame(
            services,
            principal,
            "device",
            devices=frozenset() if device is None else frozenset({device_id}),
        )
        if device is None:
            with frame.content:
                ui.label("No such device:").classes("text-lg")
                ui.label(device_id).classes("font-mono break-all").mark("missing-device").props(
                    "data-testid=missing-device"
                )
                ui.link("Back to the overview", "/")
            return None
        ui.page_title(f"{device_id} · IoT Hub")
        with frame.content:
            windows = await services.alarms.active_windows(device_id, device.gateway_id)
            window_banner(windows, frame.tz, now_ms())
        meta = (await services.metadata.device_metadata(device_id, device.type)).effective
        page = DevicePage(frame, device, range if range in RANGE_CHOICES else LIVE, meta)
        page.build()
        ui.timer(0.01, page.start, once=True)  # in the page's context, once connected
        return None


class DevicePage:
    def __init__(
        self,
        frame: PageFrame,
        device: DeviceView,
        choice: str,
        meta: MetadataDoc | None = None,
    ) -> None:
        self.frame = frame
        self.meta = meta or MetadataDoc()  # display names, units, place (hub.metadata)
        self.device = device
        self.device_id = device.device_id
        self.choice = choice
        self.range: TimeRange | None = None
        self.max_points = DEFAULT_MAX_POINTS
        self.charts: dict[str, MetricChart] = {}
        self.value_labels: dict[str, ui.label] = {}
        self.last_seen = device.last_seen
        self.latest_ts = device.latest_ts
        self.loads = 0  # completed range loads (tests wait on it)
        self._generation = 0
        self._loading = False
        self._backlog: list[LiveReading] = []  # live readings that arrived during a load
        self._header_at = time.monotonic()

    # -- building ------------------------------------------------------------------------------

    def build(self) -> None:
        with self.frame.content:
            self._header_card(self.device)
            self._range_bar(self.frame.tz)
            self._charts(self.device, self.frame.tz)
        self._apply_header(self.device)
        pump = self.frame.pump
        pump.on_readings(self._on_readings)
        pump.on_alerts(self._on_alerts)
        pump.on_tick(self._on_tick)

    def _header_card(self, d: DeviceView) -> None:
        with ui.card().classes("w-full p-3 gap-2"):
            with ui.row().classes("items-center gap-3 w-full flex-wrap"):
                ui.button(icon="arrow_back").props("flat round dense href=/").tooltip("Overview")
                ui.label(d.device_id).classes("text-xl font-semibold break-all").mark(
                    "device-title"
                ).props("data-testid=device-title")
                self.state_badge = (
                    ui.badge(d.state).mark("device-state").props("data-testid=device-state")
                )
                if self.meta.display_name:
                    ui.label(self.meta.display_name).classes("text-lg").mark(
                        "device-display-name"
                    ).props("data-testid=device-display-name")
                ui.label(f"type {d.type or 'unknown'}").classes("text-sm opacity-80")
                ui.label(place_label(d.site, self.meta)).classes("text-sm opacity-80").mark(
                    "device-place"
                )
                ui.label(f"gateway {d.gateway_id}").classes("text-sm opacity-80")
                ui.space()
                self.last_seen_label = ui.label().classes("text-sm iot-mono").mark("last-seen")
                self.alerts_link = ui.link("", f"/alerts?device_id={_quote(d.device_id)}").mark(
                    "device-alerts"
                )
            with ui.element("div").classes("flex flex-wrap gap-x-5 gap-y-1"):
                for metric in d.metrics:
                    with ui.column().classes("gap-0"):
                        ui.label(self._metric_label(metric)).classes("text-[11px] opacity-60").mark(
                            f"metric-label-{metric}"
                        ).props(f"data-testid=metric-label-{metric}")
                        self.value_labels[metric] = (
                            ui.label("-")
                            .classes("text-base font-medium iot-mono")
                            .mark(f"value-{metric}")
                        )

    def _meta(self, metric: str) -> MetricMeta:
        return self.meta.metrics.get(metric) or MetricMeta()

    def _unit(self, metric: str) -> str:
        unit = self._meta(metric).unit
        return unit_of(self.device.type, metric) if unit is None else unit

    def _display_name(self, metric: str) -> str | None:
        """The display name, else the name at the source (a Sparkplug metric's `Motor 1/Temp`)."""
        meta = self._meta(metric)
        return meta.display_name or meta.source_name

    def _metric_label(self, metric: str) -> str:
        name = self._display_name(metric)
        return f"{name} ({metric})" if name and name != metric else metric

    def _range_bar(self, tz: ZoneInfo) -> None:
        with ui.row().classes("w-full items-center gap-2 flex-wrap").mark("range-bar"):
            self.picker = (
                ui.toggle(list(RANGE_CHOICES), value=self.choice, on_change=self._on_choice)
                .props("no-caps dense")
                .mark("range")
            )
            now = now_ms()
            self.custom_box = ui.row().classes("items-center gap-2 flex-wrap")
            with self.custom_box:
                self.custom_start = (
                    ui.input("From", value=input_value(now - 3_600_000, tz))
                    .props("type=datetime-local dense")
                    .mark("custom-start")
                )
                self.custom_end = (
                    ui.input("To", value=input_value(now, tz))
                    .props("type=datetime-local dense")
                    .mark("custom-end")
                )
                ui.button("Show", on_click=self._on_custom).props("dense").mark("custom-apply")
            self.custom_box.set_visibility(self.choice == CUSTOM)
            ui.space()
            self.status = (
                ui.label("loading...")
                .classes("text-xs opacity-70")
                .mark("status")
                .props("data-testid=status")
            )
            ui.button("CSV", icon="download", on_click=self.export_csv).props("dense outline").mark(
                "csv"
            )

    def _charts(self, d: DeviceView, tz: ZoneInfo) -> None:
        with ui.element("div").classes("w-full grid grid-cols-1 xl:grid-cols-2 gap-3"):
            for metric in d.metrics:
                with ui.card().classes("w-full p-1"):
                    self.charts[metric] = MetricChart(
                        metric=metric,
                        label=self._display_name(metric),
                        unit=self._unit(metric),
                        flag=is_flag(d.type, metric, d.latest.get(metric)),
                        tz=tz,
                    )
        if not d.metrics:
            ui.label("This device has not reported any metric yet.").classes("opacity-70")

    async def start(self) -> None:
        """After the browser connected: learn the chart width, load the range, and let live
        points through once each chart is drawn."""
        client = self.frame.content.client
        await client.connected()
        try:
            width = await client.run_javascript(_WIDTH_JS, timeout=3)
        except TimeoutError:
            width = None
        if isinstance(width, int | float) and width > 0:
            chart_px = width / 2 if width >= TWO_COLUMNS_PX else width
            self.max_points = int(max(MIN_MAX_POINTS, min(MAX_MAX_POINTS, chart_px)))
        await self.load()
        await asyncio.gather(*(chart.wait_ready() for chart in self.charts.values()))

    # -- ranges ----------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the chosen range for every chart at once and show it (a stale answer, overtaken
        by a newer choice, is dropped)."""
        try:
            chosen = time_range(
                self.choice,
                now_ms(),
                custom_start=self.custom_start.value,
                custom_end=self.custom_end.value,
                tz=self.frame.tz,
            )
        except ValueError as exc:
            ui.notify(str(exc), type="warning")
            return
        self._generation += 1
        generation = self._generation
        self._loading = True
        self.status.text = "loading..."
        data = self.frame.services.reads
        # Live: up to now and a little beyond, so nothing between the read and the first
        # appended reading is lost (appending skips what the chart already has).
        end = chosen.end + 60_000 if chosen.live else chosen.end
        try:
            markers, series = await asyncio.gather(
                data.alert_markers(self.device_id, chosen.start, end),
                asyncio.gather(
                    *(
                        data.series(self.device_id, metric, chosen.start, end, self.max_points)
                        for metric in self.charts
                    )
                ),
            )
        finally:
            if generation == self._generation:
                self._loading = False
        if generation != self._generation:
            return
        self.range = chosen
        keep = max(LIVE_KEEP_POINTS, 2 * self.max_points) if chosen.live else self.max_points
        for chart, s in zip(self.charts.values(), series, strict=True):
            chart.show(
                s,
                markers,
                x_range=None if chosen.live else (chosen.start, chosen.end),
                max_points=max(keep, len(s.ts)),
            )
        self._show_status(list(series))
        self.loads += 1
        backlog, self._backlog = self._backlog, []
        if chosen.live and backlog:
            self._append_live(backlog)

    def _show_status(self, series: list[Series]) -> None:
        if not series or self.range is None:
            self.status.text = ""
            return
        source = source_label(series)
        points = sum(len(s.ts) for s in series)
        thinned = ", min/max-downsampled" if any(s.downsampled for s in series) else ""
        tz = self.frame.tz
        if self.range.live:
            span = "live, last 15 min and arriving"
        else:
            span = f"{format_time(self.range.start, tz)} to {format_time(self.range.end, tz)}"
        self.status.text = f"{span} · {source}{thinned} · {points:,} points"

    async def _on_choice(self) -> None:
        self.choice = str(self.picker.value)
        self.custom_box.set_visibility(self.choice == CUSTOM)
        if self.choice != CUSTOM:
            ui.navigate.history.replace(
                f"{device_href(self.device_id)}?range={_quote(self.choice)}"
            )
            await self.load()

    async def _on_custom(self) -> None:
        self.choice = CUSTOM
        await self.load()

    # -- live --------------------------------------------------------------------------------------

    def _on_readings(self, readings: list[LiveReading]) -> None:
        mine = [r for r in readings if r.device_id == self.device_id]
        if not mine:
            return
        newest: dict[str, float | bool] = {}
        for reading in mine:
            ts = reading.ts
            if self.last_seen is None or ts > self.last_seen:
                self.last_seen = ts
            if self.latest_ts is None or ts >= self.latest_ts:
                self.latest_ts = ts
                newest.update(reading.metrics)
        self._set_values(newest)
        if newest:
            self.state_badge.text = "online"
            self.state_badge.props("color=positive")
        if self._loading:
            self._backlog.extend(mine)
        elif self.range is not None and self.range.live:
            self._append_live(mine)

    def _append_live(self, readings: list[LiveReading]) -> None:
        per_metric: dict[str, list[tuple[int, float]]] = {}
        for reading in readings:
            for metric, value in reading.metrics.items():
                per_metric.setdefault(metric, []).append((reading.ts, float(value)))
        for metric, points in per_metric.items():
            chart = self.charts.get(metric)
            if chart is not None:
                chart.append(points)

    def _on_alerts(self, events: list[dict[str, Any]]) -> None:
        mine = [e for e in events if e.get("device_id") == self.device_id]
        if not mine:
            return
        if self.range is not None and self.range.live:
            for event in mine:
                if event.get("event") == "raised":
                    for chart in self.charts.values():
                        chart.mark(event)
        self._header_at = 0.0  # re-read the alert count on the next tick

    async def _on_tick(self) -> None:
        self.last_seen_label.text = f"last seen {format_age(self.last_seen, now_ms())}"
        if time.monotonic() - self._header_at >= HEADER_REFRESH_S:
            self._header_at = time.monotonic()
            device = await self.frame.services.reads.device(self.device_id)
            if device is not None:
                self._apply_header(device)

    def _apply_header(self, d: DeviceView) -> None:
        self.device = d
        self.state_badge.text = d.state
        colour = {"online": "positive", "offline": "negative"}.get(d.state, "grey")
        self.state_badge.props(f"color={colour}")
        if d.last_seen is not None and (self.last_seen is None or d.last_seen > self.last_seen):
            self.last_seen = d.last_seen
        self.last_seen_label.text = f"last seen {format_age(self.last_seen, now_ms())}"
        count = d.active_alerts
        self.alerts_link.text = f"{count} active alert{'s' if count != 1 else ''}"
        self.alerts_link.classes(replace="text-negative font-medium" if count else "opacity-70")
        if d.latest and (
            self.latest_ts is None or d.latest_ts is None or d.latest_ts >= self.latest_ts
        ):
            self.latest_ts = d.latest_ts or self.latest_ts
            self._set_values(d.latest)

    def _set_values(self, values: dict[str, float | bool]) -> None:
        kind = self.device.type
        for metric, value in values.items():
            label = self.value_labels.get(metric)
            if label is not None:
                label.text = described_value(kind, metric, value, self._meta(metric).unit)

    # -- export ------------------------------------------------------------------------------------

    def export_csv(self) -> None:
        """The points the charts show now (live ones included), as CSV."""
        chosen = self.range
        shown = [
            Series(
                device_id=self.device_id,
                metric=metric,
                source="raw",
                start=chosen.start if chosen else 0,
                end=chosen.end if chosen else 0,
                ts=chart.ts,
                values=chart.values,
                downsampled=False,
            )
            for metric, chart in self.charts.items()
        ]
        label = chosen.choice if chosen is not None else LIVE
        stamp = format_time(chosen.start if chosen else now_ms(), self.frame.tz)
        name = safe_filename(self.device_id, label.replace(" ", ""), stamp.replace(" ", "T"))
        ui.download.content(csv_export(shown), f"{name}.csv", "text/csv")


def _quote(text: str) -> str:
    return quote(text, safe="")
