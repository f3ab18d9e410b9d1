"""The worker's hold on new alerts while a maintenance window suppresses them.

`WindowGate.reload` reads the windows from the store (a worker timer runs it every
HUB_WINDOWS_RELOAD_S, so a change reaches every worker within seconds, without a restart);
`holds_back` answers for one transition. Only a "raised" is held back: an update or a clear of
an alert already open still applies, so no alert is left stuck. The alert pipeline tells the
engine to forget a held-back alert, so it is raised as usual on the first sample after the
window ends if its condition still holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from hub.alarms.ports import AlarmStore
from hub.alarms.windows import DeviceRef, MaintenanceWindow, covering
from hub.storage.model import AlertTransitionLike

__all__ = ["WindowGate"]

log = logging.getLogger(__name__)

_REFS_MAX: Final = 100_000  # devices whose site and type are remembered between reloads


class WindowGate:
    def __init__(self, store: AlarmStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._windows: list[MaintenanceWindow] = []
        self._refs: dict[str, DeviceRef] = {}
        self.held_back_total = 0

    @property
    def windows(self) -> list[MaintenanceWindow]:
        """The windows that suppress alerts, as of the last reload."""
        return list(self._windows)

    async def reload(self) -> None:
        """Raises what the store raises (the timer logs it and keeps the previous windows)."""
        windows = [w for w in await self._store.windows() if w.spec.suppress == "alerts"]
        if [w.to_json() for w in windows] != [w.to_json() for w in self._windows]:
            log.info("maintenance_windows_loaded", extra={"windows": [w.name for w in windows]})
        self._windows = windows
        self._refs.clear()  # a device may have moved to another site or gateway

    async def holds_back(self, t: AlertTransitionLike) -> str | None:
        """The names of the windows that hold back ``t`` now, or None to let it through."""
        if t.kind != "raised" or not self._windows:
            return None
        now_ms = int(self._clock() * 1000)
        if all(w.active_until(now_ms) is None for w in self._windows):
            return None
        ref = await self._ref(t.device_id, t.gateway_id)
        active = covering(self._windows, ref, now_ms, suppress="alerts")
        if not active:
            return None
        self.held_back_total += 1
        return ", ".join(w.name for w in active)

    async def _ref(self, device_id: str | None, gateway_id: str | None) -> DeviceRef:
        if device_id is None:
            return DeviceRef(None, gateway_id)
        ref = self._refs.get(device_id)
        if ref is None:
            ref = await self._store.device_ref(device_id) or DeviceRef(device_id, gateway_id)
            if len(self._refs) < _REFS_MAX:
                self._refs[device_id] = ref
        return ref
