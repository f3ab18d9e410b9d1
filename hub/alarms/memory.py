"""The `AlarmStore` port in memory, over the alerts and devices of a
`hub.storage.memory_worker.MemoryDatabase` (the one `MemoryHub` shares), held to the same
contract as the PostgreSQL adapter (tests/contracts/alarm_storage.py). One event loop; no
method awaits between reading and writing, so each is atomic."""

from __future__ import annotations

import itertools

from hub.alarms.ports import DuplicateNameError
from hub.alarms.windows import DeviceRef, MaintenanceWindow, WindowSpec
from hub.storage.memory_worker import MemoryDatabase
from hub.storage.model import AlertRow

__all__ = ["MemoryAlarmStore"]


def _key(row: AlertRow) -> tuple[str, str, str]:
    return row.device_id or "", row.gateway_id or "", row.rule


class MemoryAlarmStore:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database
        self._windows: dict[int, MaintenanceWindow] = {}
        self._ids = itertools.count(1)

    async def get_alert(self, alert_id: int) -> AlertRow | None:
        return self._db.alerts.get(alert_id)

    async def shelve_alert(
        self, alert_id: int, by: str, reason: str, until_ms: int
    ) -> AlertRow | None:
        row = self._db.alerts.get(alert_id)
        if row is None:
            return None
        return self._db.put_alert(
            row,
            shelved_by=by,
            shelve_reason=reason,
            shelved_until=until_ms,
            shelved_at=self._db.now_ms(),
        )

    async def unshelve_alert(self, alert_id: int) -> AlertRow | None:
        row = self._db.alerts.get(alert_id)
        if row is None:
            return None
        for other in list(self._db.alerts.values()):
            if other.shelved_until is not None and (other.id == row.id or _key(other) == _key(row)):
                self._db.put_alert(
                    other, shelved_by=None, shelve_reason=None, shelved_until=None, shelved_at=None
                )
        return self._db.alerts[alert_id]

    async def shelves_ended(self, after_ms: int, until_ms: int) -> list[AlertRow]:
        ended = [
            a
            for a in self._db.alerts.values()
            if a.shelved_until is not None and after_ms < a.shelved_until <= until_ms
        ]
        return sorted(ended, key=lambda a: a.id)[:1000]

    async def device_ref(self, device_id: str) -> DeviceRef | None:
        d = self._db.devices.get(device_id)
        return None if d is None else DeviceRef(d.device_id, d.gateway_id, d.site, d.type)

    async def windows(self) -> list[MaintenanceWindow]:
        return sorted(self._windows.values(), key=lambda w: w.name)

    async def window(self, window_id: int) -> MaintenanceWindow | None:
        return self._windows.get(window_id)

    def _check_name(self, spec: WindowSpec, window_id: int | None) -> None:
        if any(w.name == spec.name and w.id != window_id for w in self._windows.values()):
            raise DuplicateNameError(spec.name)

    async def create_window(self, spec: WindowSpec, by: str) -> MaintenanceWindow:
        self._check_name(spec, None)
        now = self._db.now_ms()
        window = MaintenanceWindow(next(self._ids), spec, by, now, by, now)
        self._windows[window.id] = window
        return window

    async def update_window(
        self, window_id: int, spec: WindowSpec, by: str
    ) -> MaintenanceWindow | None:
        old = self._windows.get(window_id)
        if old is None:
            return None
        self._check_name(spec, window_id)
        new = MaintenanceWindow(
            window_id, spec, old.created_by, old.created_at, by, self._db.now_ms()
        )
        self._windows[window_id] = new
        return new

    async def delete_window(self, window_id: int) -> MaintenanceWindow | None:
        return self._windows.pop(window_id, None)
