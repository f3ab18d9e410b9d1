"""The storage port of shelving and maintenance windows, as a `typing.Protocol`: a PostgreSQL
adapter (`hub.alarms.postgres.PostgresAlarmStore`) and an in-memory one
(`hub.alarms.memory.MemoryAlarmStore`), held to one contract (tests/contracts/alarm_storage.py).
Times are epoch ms (UTC)."""

from __future__ import annotations

from typing import Protocol

from hub.alarms.windows import DeviceRef, MaintenanceWindow, WindowSpec
from hub.storage.model import AlertRow

__all__ = ["AlarmStore", "DuplicateNameError"]


class DuplicateNameError(ValueError):
    """Another maintenance window has the name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"name {name!r} is taken by another maintenance window")


class AlarmStore(Protocol):
    async def get_alert(self, alert_id: int) -> AlertRow | None: ...

    async def shelve_alert(
        self, alert_id: int, by: str, reason: str, until_ms: int
    ) -> AlertRow | None:
        """Shelve the alert (open or cleared) until ``until_ms``, replacing any shelf it has;
        None if no such id. Its alarm's next alert starts shelved while this shelf lasts."""
        ...

    async def unshelve_alert(self, alert_id: int) -> AlertRow | None:
        """End the shelf of the alert and of its alarm (so no later alert inherits it); None
        if no such id."""
        ...

    async def shelves_ended(self, after_ms: int, until_ms: int) -> list[AlertRow]:
        """The alerts whose shelf ran out in ``(after_ms, until_ms]``, by id (at most 1000)."""
        ...

    async def device_ref(self, device_id: str) -> DeviceRef | None:
        """The device's site, type and gateway as last seen; None if unknown."""
        ...

    async def windows(self) -> list[MaintenanceWindow]:
        """Every window, by name."""
        ...

    async def window(self, window_id: int) -> MaintenanceWindow | None: ...

    async def create_window(self, spec: WindowSpec, by: str) -> MaintenanceWindow:
        """DuplicateNameError if the name is taken."""
        ...

    async def update_window(
        self, window_id: int, spec: WindowSpec, by: str
    ) -> MaintenanceWindow | None:
        """None if no such id; DuplicateNameError if the new name is another's."""
        ...

    async def delete_window(self, window_id: int) -> MaintenanceWindow | None:
        """The window deleted; None if no such id."""
        ...
