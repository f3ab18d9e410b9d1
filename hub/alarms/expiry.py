"""A live event when a shelf runs out, so open alerts pages drop the badge at once rather than
at their next refresh. Nothing depends on it for correctness (shelved is `shelved_until > now`
wherever it is read): best effort, on the Redis live channel only, never on Kafka. With several
workers each publishes it; a page only refreshes on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from hub.alarms.ports import AlarmStore
from hub.storage.alert_events import alert_event, encode_event

__all__ = ["LiveAlerts", "ShelfExpiries"]

log = logging.getLogger(__name__)


class LiveAlerts(Protocol):
    async def publish_alert(self, event_json: str | bytes) -> bool: ...


class ShelfExpiries:
    def __init__(self, store: AlarmStore, live: LiveAlerts, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._live = live
        self._clock_ms = clock_ms
        self._since = clock_ms()  # shelves that ended before the worker started: not news

    async def publish(self) -> int:
        """One `shelf_expired` event per alert whose shelf ended since the last call."""
        now = self._clock_ms()
        ended = await self._store.shelves_ended(self._since, now)
        for row in ended:
            await self._live.publish_alert(encode_event(alert_event("shelf_expired", row)))
            log.info("alert_shelf_expired", extra={"alert_id": row.id, "device_id": row.device_id})
        self._since = now
        return len(ended)
