"""One live subscription per open page, applied in batches.

A page subscribes to the process's fan-out (`hub.web.fanout`) once; a `ui.timer` bound to the
page's client drains whatever arrived every `interval_s` (250 ms) and hands the batch to the
page's handlers in one go, so a burst of readings costs one round of updates on the page's
WebSocket, not one per reading. The subscription ends with the client (`on_delete`); a page
that fell so far behind that the fan-out dropped it reloads and starts afresh from the database.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from nicegui import ui

from hub.web.fanout import LiveFanout
from hub.web.model import LiveReading

__all__ = ["AlertHandler", "LivePump", "ReadingHandler"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ReadingHandler = Callable[[list[LiveReading]], Awaitable[None] | None]
AlertHandler = Callable[[list[dict[str, Any]]], Awaitable[None] | None]

INTERVAL_S: Final = 0.25
# At most this many fan-out events per tick; the rest wait for the next one, so one tick never
# holds the event loop for long (each event carries up to 500 readings).
MAX_EVENTS_PER_TICK: Final = 200


class LivePump:
    def __init__(
        self,
        fanout: LiveFanout,
        *,
        devices: frozenset[str] | None = None,
        alerts: bool = True,
        interval_s: float = INTERVAL_S,
    ) -> None:
        """Create inside a page (it binds to the current client). ``devices``: None for every
        device's readings, an empty set for none."""
        self._subscription = fanout.subscribe(devices=devices, alerts=alerts)
        self._reading_handlers: list[ReadingHandler] = []
        self._alert_handlers: list[AlertHandler] = []
        self._tick_handlers: list[Callable[[], Awaitable[None] | None]] = []
        self._closed = False
        client = ui.context.client
        client.on_delete(self.close)
        self.timer = ui.timer(interval_s, self._drain)

    def on_readings(self, handler: ReadingHandler) -> None:
        """``handler(readings)``: the live readings that arrived since the last tick, oldest
        message first."""
        self._reading_handlers.append(handler)

    def on_alerts(self, handler: AlertHandler) -> None:
        """``handler(events)``: alert events (`event` plus the alert row's JSON)."""
        self._alert_handlers.append(handler)

    def on_tick(self, handler: Callable[[], Awaitable[None] | None]) -> None:
        """Called after every tick, with or without news (for throttled follow-ups)."""
        self._tick_handlers.append(handler)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._subscription.close()
            self.timer.cancel()

    async def _drain(self) -> None:
        if self._closed:
            return
        readings: list[LiveReading] = []
        alerts: list[dict[str, Any]] = []
        for _ in range(MAX_EVENTS_PER_TICK):
            event = self._subscription.get_nowait()
            if event is None:
                break
            if event.kind == "readings":
                readings.extend(event.readings)
            elif event.alert is not None:
                alerts.append(event.alert)
        if self._subscription.dropped:
            log.warning("page_live_dropped", extra={"reason": "slow client"})
            self.close()
            ui.navigate.reload()
            return
        if readings:
            for reading_handler in self._reading_handlers:
                await _call(reading_handler, readings)
        if alerts:
            for alert_handler in self._alert_handlers:
                await _call(alert_handler, alerts)
        for tick_handler in self._tick_handlers:
            result = tick_handler()
            if inspect.isawaitable(result):
                await result


async def _call(handler: Callable[[list[T]], Any], items: list[T]) -> None:
    result = handler(items)
    if inspect.isawaitable(result):
        await result
