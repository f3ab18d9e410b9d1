"""The overview's logic, without UI: what a device row shows as views from the database and
live readings arrive in any order, and which unlisted devices could belong on the page."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hub.web.model import DeviceFilter, DeviceView, LiveReading

REFRESH_S: Final = 10.0
NEW_DEVICE_REFRESH_S: Final = 2.0  # at most this often when readings of unlisted devices arrive


@dataclass
class RowState:
    """A device row's last-seen time and newest values, merged from the database's views and
    from live readings: whichever is newer wins, whatever order they come in."""

    last_seen: int | None
    latest_ts: int | None

    @classmethod
    def of(cls, device: DeviceView) -> RowState:
        return cls(device.last_seen, device.latest_ts)

    def merge_view(self, device: DeviceView) -> dict[str, float | bool]:
        """The view's values to show: none when the row already shows newer ones."""
        if device.last_seen is not None and (
            self.last_seen is None or device.last_seen > self.last_seen
        ):
            self.last_seen = device.last_seen
        newer = (
            self.latest_ts is None or device.latest_ts is None or device.latest_ts >= self.latest_ts
        )
        if not (device.latest and newer):
            return {}
        self.latest_ts = device.latest_ts or self.latest_ts
        return dict(device.latest)

    def merge_readings(self, readings: Iterable[LiveReading]) -> dict[str, float | bool]:
        """The newest value of each metric of the readings (oldest first) that is not older than
        what the row shows."""
        newest: dict[str, float | bool] = {}
        for reading in readings:
            ts = reading.ts
            if self.last_seen is None or ts > self.last_seen:
                self.last_seen = ts
            if self.latest_ts is None or ts >= self.latest_ts:
                self.latest_ts = ts
                newest.update(reading.metrics)
        return newest


def by_device(readings: Iterable[LiveReading]) -> dict[str, list[LiveReading]]:
    """The readings of each device, in the order they came."""
    grouped: dict[str, list[LiveReading]] = {}
    for reading in readings:
        grouped.setdefault(reading.device_id, []).append(reading)
    return grouped


def could_match(f: DeviceFilter, reading: LiveReading) -> bool:
    """Could this unlisted device belong on the page? (The database decides for sure: a live
    reading means the device is online.)"""
    if f.site is not None and reading.site != f.site:
        return False
    if f.type is not None and reading.type != f.type:
        return False
    if f.search is not None and f.search.lower() not in reading.device_id.lower():
        return False
    if f.device_ids is not None and reading.device_id not in f.device_ids:
        return False
    return f.state in (None, "online")
