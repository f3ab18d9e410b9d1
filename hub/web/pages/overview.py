"""`/`: every device at a glance (state, last seen, type, site, latest values, a 30-minute
sparkline, active alerts), a card per gateway, alert totals; filter by site, type and state,
search by id.

Live readings update each row's labels in place (only what changed goes over the WebSocket);
a reading from a device not on the list, and a 10 s refresh, re-read the list from PostgreSQL so
new devices appear and states, alert counts and gateways stay current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from hub.metadata.model import MetadataDoc
from hub.web.container import WebServices
from hub.web.metadata_service import all_devices, at_place, place_choices, place_key
from hub.web.model import (
    DEVICE_STATES,
    AlertFilter,
    DeviceFilter,
    DeviceView,
    GatewayView,
    LiveReading,
    Page,
)
from hub.web.pages import session
from hub.web.pages.alarm_widgets import window_banner
from hub.web.pages.layout import PageFrame, list_pager, page_frame, show_list_page
from hub.web.views.gateways import (
    connector_lines,
    connectors_alarming,
    runway_alarming,
    runway_text,
)
from hub.web.views.links import device_href
from hub.web.views.numbers import described_value, format_age, format_duration, format_rate
from hub.web.views.overview import (
    NEW_DEVICE_REFRESH_S,
    REFRESH_S,
    RowState,
    by_device,
    could_match,
)
from hub.web.views.pacing import RefreshPacing
from hub.web.views.spark import (
    SPARK_HEIGHT,
    SPARK_WIDTH,
    SPARK_WINDOW_MS,
    SparkBuffer,
    spark_metric,
)
from hub.web.views.times import now_ms
from iot_common.humanize import human_bytes

__all__ = ["DeviceRow", "OverviewView", "register"]

PAGE_SIZE: Final = 100
SPARK_REDRAW_S: Final = 5.0
SPARK_QUERY_POINTS: Final = 60
ALL: Final = "all"

STATE_COLOURS: Final[dict[str, str]] = {
    "online": "positive",
    "offline": "negative",
    "unknown": "grey",
}


def register(services: WebServices) -> None:
    @ui.page("/", title="Overview · IoT Hub")
    async def overview_page(
        request: Request,
        site: str = "",
        type: str = "",
        state: str = "",
        q: str = "",
        area: str | None = None,
        line: str | None = None,
        machine: str | None = None,
    ) -> RedirectResponse | None:
        principal = await session.current_principal(services.auth)
        if principal is None:
            return session.login_redirect(request)
        frame = await page_frame(services, principal, "overview", devices=None)
        with frame.content:
            window_banner(await services.alarms.active_windows(), frame.tz, now_ms())
        view = OverviewView(
            frame,
            DeviceFilter(
                site=site or None,
                type=type or None,
                state=state if state in DEVICE_STATES else None,
                search=q or None,
                limit=PAGE_SIZE,
            ),
            place=(area, line, machine),
        )
        await view.build()
        return None


class DeviceRow:
    """One device's row; updated in place by `apply_view` (from the database) and
    `apply_readings` (live)."""

    def __init__(
        self,
        device: DeviceView,
        frame: PageFrame,
        spark: SparkBuffer,
        meta: MetadataDoc | None = None,
    ) -> None:
        self.device = device
        self.meta = meta or MetadataDoc()  # display names and units (hub.metadata)
        self.device_id = device.device_id
        self.state = RowState.of(device)
        self._frame = frame
        self._spark = spark
        self._spark_metric = spark_metric(device.type, device.metrics, device.latest)
        self._spark_drawn_at = 0.0
        self._spark_dirty = False
        self.value_labels: dict[str, ui.label] = {}

        with (
            ui.element("div")
            .classes(
                "w-full grid gap-x-4 gap-y-1 items-center px-3 py-2 "
                "grid-cols-[minmax(0,1fr)_auto] md:grid-cols-[16rem_minmax(0,1fr)_8rem_7rem_4rem] "
                "border-b border-gray-200 dark:border-gray-700"
            )
            .mark("device-row")
            .props("data-testid=device-row") as self.element
        ):
            self._name_cell(device)
            self._values_cell(device)
            with ui.column().classes("gap-0 max-md:!hidden"):
                with (
                    ui.element("svg")
                    .props(
                        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" width={SPARK_WIDTH} '
                        f"height={SPARK_HEIGHT} preserveAspectRatio=none"
                    )
                    .classes("iot-spark text-primary")
                ):
                    self.spark_line = ui.element("polyline")
                ui.label(self._spark_metric or "").classes("text-[10px] opacity-60 truncate")
            self.last_seen_label = ui.label().classes("text-xs iot-mono").mark("last-seen")
            self.alerts_badge = ui.badge("").classes("justify-self-start").mark("device-alerts")

        self.apply_view(device)
        self.draw_spark(force=True)

    def _name_cell(self, device: DeviceView) -> None:
        """The device's id (a link), display name, state, type and site."""
        with ui.column().classes("gap-0 min-w-0"):
            with ui.row().classes("items-center gap-1 no-wrap min-w-0"):
                self.state_icon = ui.icon("circle", size="xs")
                ui.link(device.device_id, device_href(device.device_id)).classes(
                    "font-medium truncate"
                ).mark("device-link").props("data-testid=device-link")
                if self.meta.display_name:
                    ui.label(self.meta.display_name).classes("text-xs truncate").mark(
                        "device-display-name"
                    )
            with ui.row().classes("gap-1 text-xs opacity-70 no-wrap min-w-0"):
                self.state_label = ui.label().mark("device-state").props("data-testid=device-state")
                ui.label("·")
                ui.label(device.type or "untyped").classes("truncate")
                ui.label("·")
                ui.label(device.site).classes("truncate")

    def _values_cell(self, device: DeviceView) -> None:
        """The latest value of each metric, the metric's display name as its tooltip."""
        with ui.element("div").classes(
            "flex flex-wrap gap-x-3 gap-y-0 col-span-2 md:col-span-1 order-last md:order-none"
        ):
            for metric in device.metrics:
                with ui.column().classes("gap-0"):
                    named = self.meta.metrics.get(metric)
                    ui.label(metric).classes("text-[10px] opacity-60 leading-tight").tooltip(
                        named.display_name if named and named.display_name else metric
                    )
                    self.value_labels[metric] = ui.label("-").classes(
                        "text-sm font-medium iot-mono leading-tight"
                    )

    @property
    def spark_metric(self) -> str | None:
        return self._spark_metric

    def apply_view(self, device: DeviceView) -> None:
        self.device = device
        self._set_state(device.state)
        self._set_values(self.state.merge_view(device))
        self.alerts_badge.text = str(device.active_alerts)
        self.alerts_badge.props(
            f"color={'negative' if device.worst_severity == 'critical' else 'warning'}"
        )
        self.alerts_badge.set_visibility(device.active_alerts > 0)
        self.tick(now_ms())

    def apply_readings(self, readings: list[LiveReading]) -> bool:
        """Newest values of the readings (oldest first); False if one has a metric this row does
        not show yet (the list should be re-read)."""
        if self._spark_metric is not None:
            for reading in readings:
                value = reading.metrics.get(self._spark_metric)
                if value is not None:
                    self._spark.add(reading.ts, float(value))
                    self._spark_dirty = True
        newest = self.state.merge_readings(readings)
        if not newest:
            return True
        self._set_values(newest)
        self._set_state("online")
        return all(metric in self.value_labels for metric in newest)

    def tick(self, now: int) -> None:
        self.last_seen_label.text = format_age(self.state.last_seen, now)
        if self._spark_dirty:
            self.draw_spark()

    def draw_spark(self, *, force: bool = False) -> None:
        clock = time.monotonic()
        if not force and clock - self._spark_drawn_at < SPARK_REDRAW_S:
            return
        self._spark_drawn_at = clock
        self._spark_dirty = False
        points = self._spark.points(now_ms())
        if self.spark_line.props.get("points") != points:
            self.spark_line.props["points"] = points

    def _set_state(self, state: str) -> None:
        self.state_label.text = state
        colour = STATE_COLOURS.get(state, "grey")
        if self.state_icon.props.get("color") != colour:
            self.state_icon.props["color"] = colour

    def _set_values(self, values: dict[str, float | bool]) -> None:
        kind = self.device.type
        for metric, value in values.items():
            label = self.value_labels.get(metric)
            if label is not None:
                named = self.meta.metrics.get(metric)
                label.text = described_value(
                    kind, metric, value, None if named is None else named.unit
                )


class GatewayCard:
    def __init__(self, gateway: GatewayView) -> None:
        self.gateway_id = gateway.gateway_id
        with (
            ui.card()
            .classes("w-full sm:w-72 p-3 gap-1")
            .mark("gateway-card")
            .props("data-testid=gateway-card") as self.card
        ):
            with ui.row().classes("items-center gap-2 no-wrap w-full"):
                self.state_icon = ui.icon("router")
                ui.label(gateway.gateway_id).classes("font-medium truncate")
                ui.space()
                self.state_badge = ui.badge("").mark("gateway-state")
            ui.label(f"site {gateway.site}").classes("text-xs opacity-70")
            self.backlog = ui.label().classes("text-sm iot-mono")
            self.bar = ui.linear_progress(value=0, show_value=False, size="6px")
            self.runway = ui.label().classes("text-sm iot-mono").mark("gateway-runway")
            self.rates = ui.label().classes("text-sm iot-mono")
            self.extra = ui.label().classes("text-xs opacity-70 iot-mono")
            self.connectors = (
                ui.label()
                .classes("text-xs iot-mono whitespace-pre-line")
                .mark("gateway-connectors")
            )
        self.apply(gateway, now_ms())

    def apply(self, g: GatewayView, now: int) -> None:
        online = g.state == "online"
        self.state_badge.text = g.state
        self.state_badge.props(f"color={'positive' if online else 'negative'}")
        self.state_icon.props(f"color={'positive' if online else 'negative'}")
        oldest = format_duration(g.buffer_oldest_age_s) if g.buffer_depth else "-"
        self.backlog.text = (
            f"backlog {g.buffer_depth:,} ({human_bytes(g.buffer_bytes)}), oldest {oldest}"
        )
        fill = g.buffer_bytes / g.buffer_max_bytes if g.buffer_max_bytes > 0 else 0.0
        self.bar.value = round(min(1.0, fill), 4)
        self.bar.props(f"color={'negative' if fill > 0.8 else 'primary'}")
        self.runway.text = runway_text(g.buffer_runway_s, online=online)
        alarming = runway_alarming(g.buffer_runway_s)
        self.runway.classes(replace="text-sm iot-mono" + (" text-warning" if alarming else ""))
        self.rates.text = (
            f"in {format_rate(g.received_rate)}, forwarded {format_rate(g.forwarded_rate)}"
        )
        kafka = "kafka up" if g.kafka_connected else "KAFKA DOWN"
        self.extra.text = (
            f"{kafka} · dropped {g.dropped_total:,} · heartbeat {format_age(g.received_ts, now)}"
        )
        self.extra.classes(
            replace="text-xs iot-mono " + ("opacity-70" if g.kafka_connected else "text-negative")
        )
        lines = connector_lines(g.connectors)
        self.connectors.text = "\n".join(lines)
        self.connectors.set_visibility(bool(lines))
        down = connectors_alarming(g.connectors)
        self.connectors.classes(
            replace="text-xs iot-mono whitespace-pre-line " + ("text-negative" if down else "")
        )


class OverviewView:
    def __init__(
        self,
        frame: PageFrame,
        device_filter: DeviceFilter,
        place: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> None:
        self.frame = frame
        self.filter = device_filter
        # Area, line, machine of the asset hierarchy (hub.metadata); "" is "not named".
        self.place = place
        self.rows: dict[str, DeviceRow] = {}
        self.sparks: dict[str, SparkBuffer] = {}
        self.gateway_cards: dict[str, GatewayCard] = {}
        self.page: Page[DeviceView] | None = None
        self._pacing = RefreshPacing(every_s=REFRESH_S, soon_s=NEW_DEVICE_REFRESH_S)
        self._refreshing = False

    # -- building ------------------------------------------------------------------------------

    async def build(self) -> None:
        data = self.frame.services.reads
        sites, types = await data.facets()
        with self.frame.content:
            with ui.row().classes("w-full gap-3 items-stretch flex-wrap").mark("summary"):
                self.count_devices = _stat("devices", "memory")
                self.count_online = _stat("online", "wifi", "text-positive")
                self.count_offline = _stat("offline", "wifi_off", "text-negative")
                self.count_critical = _stat("critical alerts", "error", "text-negative", "/alerts")
                self.count_warning = _stat("warnings", "warning", "text-warning", "/alerts")

            ui.label("Gateways").classes("text-lg font-medium")
            self.gateways_box = ui.row().classes("w-full gap-3").mark("gateways")

            with ui.row().classes("w-full items-end gap-3 flex-wrap").mark("filters"):
                self.search = (
                    ui.input("Search device id", value=self.filter.search or "")
                    .props("clearable dense debounce=300")
                    .classes("w-full sm:w-64")
                    .mark("search")
                )
                self.site_select = self._select("Site", sites, self.filter.site, "site-filter")
                self.type_select = self._select("Type", types, self.filter.type, "type-filter")
                self.state_select = self._select(
                    "State", list(DEVICE_STATES), self.filter.state, "state-filter"
                )
                await self._place_select()
                ui.space()
                self.shown_label = ui.label().classes("text-sm opacity-70").mark("shown")
            self.search.on_value_change(self._on_filter_change)

            with ui.card().classes("w-full p-0 gap-0"):
                with ui.element("div").classes(
                    "grid max-md:!hidden w-full gap-x-4 px-3 py-2 text-xs uppercase opacity-60 "
                    "grid-cols-[16rem_minmax(0,1fr)_8rem_7rem_4rem] "
                    "border-b border-gray-300 dark:border-gray-600"
                ):
                    for title in ("device", "latest values", "last 30 min", "last seen", "alerts"):
                        ui.label(title)
                self.list_box = (
                    ui.column()
                    .classes("w-full gap-0")
                    .mark("device-list")
                    .props("data-testid=device-list")
                )
            self.pager = list_pager(self._on_page)

        await self._apply_place()
        await self.refresh(rebuild=True)
        pump = self.frame.pump
        pump.on_readings(self._on_readings)
        pump.on_alerts(self._on_alerts)
        pump.on_tick(self._on_tick)

    async def _place_select(self) -> None:
        """One select over the asset hierarchy's areas, lines and machines (each as its path,
        `Forming > Line 2 > P-100`), so the list can be browsed place by place."""
        services = self.frame.services
        places = await services.metadata.places(await all_devices(services.reads))
        self._places = places
        self._place_choices = place_choices(places.values())
        current = place_key(self.place)
        options = {ALL: "all places", **{k: label for k, (label, _) in self._place_choices.items()}}
        if current != ALL and current not in options:
            options[current] = current
        self.place_select = (
            ui.select(options, label="Place", value=current, on_change=self._on_filter_change)
            .props("dense options-dense")
            .classes("w-56")
            .mark("place-filter")
        )

    async def _apply_place(self) -> None:
        """The place chosen, as the devices it holds (DeviceFilter.device_ids)."""
        if all(level is None for level in self.place):
            ids = None
        else:
            ids = frozenset(
                device_id for device_id, at in self._places.items() if at_place(at[1:], self.place)
            )
        f = self.filter
        self.filter = DeviceFilter(
            f.site, f.type, f.state, f.search, f.limit, f.offset, device_ids=ids
        )

    def _select(self, label: str, options: list[str], value: str | None, marker: str) -> ui.select:
        choices = {ALL: f"all {label.lower()}s", **{o: o for o in options}}
        if value is not None and value not in choices:
            choices[value] = value
        return (
            ui.select(choices, label=label, value=value or ALL, on_change=self._on_filter_change)
            .props("dense options-dense")
            .classes("w-40")
            .mark(marker)
        )

    # -- reading the database --------------------------------------------------------------------

    async def refresh(self, *, rebuild: bool = False) -> None:
        """Re-read the list, the gateways and the totals; rows are updated in place unless the
        set of devices on the page changed."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            data = self.frame.services.reads
            page, gateways, totals = await asyncio.gather(
                data.devices(self.filter), data.gateways(), self._totals()
            )
            self.page = page
            ids = [d.device_id for d in page.items]
            if rebuild or ids != list(self.rows):
                await self._render_rows(page.items)
            else:
                for device in page.items:
                    self.rows[device.device_id].apply_view(device)
            self._render_gateways(gateways)
            self._render_totals(*totals)
            show_list_page(page, "device", self.shown_label, self.pager)
        finally:
            self._refreshing = False
            self._pacing.refreshed()

    async def _totals(self) -> tuple[int, int, int, int, int]:
        data = self.frame.services.reads
        everyone, online, offline, critical, warning = await asyncio.gather(
            data.devices(DeviceFilter(limit=1)),
            data.devices(DeviceFilter(state="online", limit=1)),
            data.devices(DeviceFilter(state="offline", limit=1)),
            data.alerts(AlertFilter(status="active", severity="critical", limit=1)),
            data.alerts(AlertFilter(status="active", severity="warning", limit=1)),
        )
        return everyone.total, online.total, offline.total, critical.total, warning.total

    def _render_totals(
        self, everyone: int, online: int, offline: int, crit: int, warn: int
    ) -> None:
        self.count_devices.text = f"{everyone:,}"
        self.count_online.text = f"{online:,}"
        self.count_offline.text = f"{offline:,}"
        self.count_critical.text = f"{crit:,}"
        self.count_warning.text = f"{warn:,}"

    async def _render_rows(self, devices: list[DeviceView]) -> None:
        await self._load_sparks(devices)
        metas = await self.frame.services.metadata.effective_many(devices)
        self.list_box.clear()
        self.rows = {}
        with self.list_box:
            if not devices:
                ui.label("No devices match.").classes("p-4 opacity-70").mark("no-devices")
            for device in devices:
                spark = self.sparks.setdefault(device.device_id, SparkBuffer())
                self.rows[device.device_id] = DeviceRow(
                    device, self.frame, spark, metas.get(device.device_id)
                )

    async def _load_sparks(self, devices: list[DeviceView]) -> None:
        """The last 30 minutes of each new row's sparkline metric, all queries at once (the
        pool bounds how many run together)."""
        data = self.frame.services.reads
        end = now_ms()
        wanted = [
            (d.device_id, metric)
            for d in devices
            if d.device_id not in self.sparks
            and (metric := spark_metric(d.type, d.metrics, d.latest)) is not None
        ]
        results = await asyncio.gather(
            *(
                data.series(device_id, metric, end - SPARK_WINDOW_MS, end + 1, SPARK_QUERY_POINTS)
                for device_id, metric in wanted
            )
        )
        for (device_id, _), series in zip(wanted, results, strict=True):
            buffer = SparkBuffer()
            buffer.extend(series.ts, series.values)
            self.sparks[device_id] = buffer

    def _render_gateways(self, gateways: list[GatewayView]) -> None:
        now = now_ms()
        if [g.gateway_id for g in gateways] != list(self.gateway_cards):
            self.gateways_box.clear()
            self.gateway_cards = {}
            with self.gateways_box:
                if not gateways:
                    ui.label("No gateway has reported yet.").classes("opacity-70")
                for g in gateways:
                    self.gateway_cards[g.gateway_id] = GatewayCard(g)
            return
        for g in gateways:
            self.gateway_cards[g.gateway_id].apply(g, now)

    # -- events ----------------------------------------------------------------------------------

    async def _on_filter_change(self) -> None:
        def chosen(select: ui.select) -> str | None:
            value = select.value
            return None if value in (None, ALL) else str(value)

        self.filter = DeviceFilter(
            site=chosen(self.site_select),
            type=chosen(self.type_select),
            state=chosen(self.state_select),
            search=(self.search.value or "").strip() or None,
            limit=PAGE_SIZE,
        )
        chosen_place = self._place_choices.get(str(self.place_select.value))
        self.place = (None, None, None) if chosen_place is None else chosen_place[1]
        await self._apply_place()
        self.pager.value = 1
        query = {
            key: value
            for key, value in (
                ("site", self.filter.site),
                ("type", self.filter.type),
                ("state", self.filter.state),
                ("q", self.filter.search),
            )
            if value
        }
        query.update(
            {
                k: v
                for k, v in zip(("area", "line", "machine"), self.place, strict=True)
                if v is not None
            }
        )
        ui.navigate.history.replace("/" + (f"?{urlencode(query)}" if query else ""))
        await self.refresh(rebuild=True)

    async def _on_page(self) -> None:
        offset = (int(self.pager.value or 1) - 1) * PAGE_SIZE
        if offset != self.filter.offset:
            f = self.filter
            self.filter = DeviceFilter(
                f.site, f.type, f.state, f.search, PAGE_SIZE, offset, f.device_ids
            )
            await self.refresh(rebuild=True)

    def _on_readings(self, readings: list[LiveReading]) -> None:
        for device_id, items in by_device(readings).items():
            row = self.rows.get(device_id)
            if row is None:
                if could_match(self.filter, items[-1]):
                    self._pacing.want()
            elif not row.apply_readings(items):
                self._pacing.want()

    def _on_alerts(self, events: list[dict[str, Any]]) -> None:
        self._pacing.want()

    async def _on_tick(self) -> None:
        if self._pacing.refresh_due():
            await self.refresh()
            return
        if self._pacing.tick_due():
            now = now_ms()
            for row in self.rows.values():
                row.tick(now)


def _stat(title: str, icon: str, colour: str = "", href: str | None = None) -> ui.label:
    card = ui.card().classes("p-3 min-w-[9rem] flex-1 sm:flex-none gap-0")
    if href is not None:
        card.classes("cursor-pointer").on("click", _go(href))
    with card, ui.row().classes("items-center gap-2 no-wrap"):
        ui.icon(icon, size="sm").classes(colour)
        with ui.column().classes("gap-0"):
            value = (
                ui.label("-")
                .classes("text-xl font-semibold iot-mono")
                .mark(f"count-{title.replace(' ', '-')}")
            )
            ui.label(title).classes("text-xs opacity-70")
    return value


def _go(href: str) -> Callable[[], None]:
    return lambda: ui.navigate.to(href)
