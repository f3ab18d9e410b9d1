"""Why a notification must not be sent now: the `NotificationSuppression` the notifier calls
just before sending (its Protocol is in `hub.notify.suppression`)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.alarms.ports import AlarmStore
from hub.alarms.shelving import shelved_text
from hub.alarms.windows import DeviceRef, covering

__all__ = ["AlarmSuppression", "iso_utc"]


def iso_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AlarmSuppression:
    """Reads the store on every call (a shelf or window written a moment ago counts at once)."""

    def __init__(self, store: AlarmStore) -> None:
        self._store = store

    async def suppressed_because(
        self, alert_id: int, device_id: str | None, gateway_id: str | None, at_ms: int
    ) -> str | None:
        """ "shelved by X until T: reason", "maintenance window 'NAME'", or None to send."""
        alert = await self._store.get_alert(alert_id)
        if alert is not None and alert.shelved_until is not None and alert.shelved(at_ms):
            return shelved_text(alert.shelved_by, iso_utc(alert.shelved_until), alert.shelve_reason)
        windows = await self._store.windows()
        if not windows:
            return None
        ref = None if device_id is None else await self._store.device_ref(device_id)
        if ref is None:
            ref = DeviceRef(device_id, gateway_id)
        active = covering(windows, ref, at_ms)
        if not active:
            return None
        return "maintenance window " + ", ".join(f"'{w.name}'" for w in active)
