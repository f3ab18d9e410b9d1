"""The worker's database port (`hub.worker.runtime.HubDatabase`) in memory, held to the same
contract as `hub.storage.postgres.Database` (tests/contracts/worker_storage.py).

`MemoryDatabase` keeps what the worker writes: readings (one per device, metric and ts), the
devices they and the statuses tell of, the one-minute rollups (`hub.storage.memory_rollups`),
the alerts, and the day partitions of `readings` by name (created ahead, on demand by a write,
and dropped with their readings past the retention). `hub.storage.memory_web.MemoryHub` reads
the same records for the dashboard. Everything runs on one event loop and no method awaits
between reading and writing its state, so each is atomic.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hub.storage.memory_rollups import MemoryRollups, MemoryTier
from hub.storage.migrations import load_migrations
from hub.storage.model import (
    ALERT_STATES,
    DEVICE_STATES,
    AlertRow,
    AlertTransitionLike,
    DeviceSeen,
    DeviceState,
    WriteResult,
    distinct_buckets,
    flatten_readings,
    rollup_bucket_ms,
    summarise_devices,
)
from hub.storage.partitions import DAY_MS, DayPartition, days_around, expired
from hub.storage.tiers import coarser_buckets, retention_cutoff_ms, tier
from hub.windows import BucketKey, bucket_ceil
from protocol import NormalisedReading

__all__ = ["DeviceRecord", "MemoryDatabase"]

# A state newer than this far ahead was written before the hub bounded timestamps: it never
# holds a later status back (as `hub.storage.postgres`).
_FROZEN_AHEAD_MS: Final = DAY_MS
_MAX_ALERTS: Final = 1000


@dataclass
class DeviceRecord:
    """One row of `devices`, timestamps as epoch ms."""

    device_id: str
    site: str
    type: str | None
    gateway_id: str
    first_seen: int | None
    last_seen: int | None
    metrics: tuple[str, ...]
    state: DeviceState = "unknown"
    state_ts: int | None = None


def device_state(state: str) -> DeviceState:
    """``state`` as a `DeviceState`; ValueError for any other."""
    for known in DEVICE_STATES:
        if known == state:
            return known
    raise ValueError(f"unknown device state: {state!r}")


def _alert_key(device_id: str | None, gateway_id: str | None, rule: str) -> tuple[str, str, str]:
    return device_id or "", gateway_id or "", rule


class MemoryDatabase:
    """The worker's records in memory (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.devices: dict[str, DeviceRecord] = {}
        self.readings: dict[tuple[str, str], dict[int, float]] = {}
        self.rollups = MemoryRollups(self.readings)
        hourly = MemoryTier(tier("1h"), self.rollups)
        self.tiers: dict[str, MemoryTier] = {"1h": hourly, "1d": MemoryTier(tier("1d"), hourly)}
        self.alerts: dict[int, AlertRow] = {}
        self._alert_ids = itertools.count(1)
        # The notification outbox (db/0005): (id, alert_id, event), written with the transition;
        # `hub.storage.notify_memory.MemoryNotifyStore` routes it.
        self.notification_outbox: list[tuple[int, int, str]] = []
        self._outbox_ids = itertools.count(1)
        self.partitions: set[DayPartition] = set()
        self._migrated = False

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def ping(self) -> None:
        return None

    # -- schema and partitions -----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """The names of every migration the first time, none after."""
        if self._migrated:
            return []
        self._migrated = True
        return [m.name for m in load_migrations()]

    async def ensure_partitions(
        self, now_ms: int, ahead_days: int, behind_days: int = 1
    ) -> list[str]:
        return self._create_partitions(days_around(now_ms, ahead_days, behind_days))

    def _create_partitions(self, days: Iterable[DayPartition]) -> list[str]:
        new = sorted(set(days) - self.partitions, key=lambda d: d.start_ms)
        self.partitions.update(new)
        return [d.name for d in new]

    async def drop_expired_partitions(self, now_ms: int, retention_days: int) -> list[str]:
        """Drops the expired days and their readings; the rollups stay, as `readings_1m` is
        not partitioned."""
        names = expired((d.name for d in self.partitions), now_ms, retention_days)
        gone = {d for d in self.partitions if d.name in names}
        self.partitions -= gone
        for series in self.readings.values():
            for ts in [ts for ts in series if DayPartition.of(ts) in gone]:
                del series[ts]
        return names

    # -- readings and devices ------------------------------------------------------------------

    async def write_readings(self, readings: Sequence[NormalisedReading]) -> WriteResult:
        rows = flatten_readings(readings)
        if not rows:
            return WriteResult(rows=0, inserted=0, devices=0)
        self._create_partitions(DayPartition.of(ts) for _, _, ts, _, _ in rows)
        inserted = 0
        for device_id, metric, ts, value, _ in rows:
            series = self.readings.setdefault((device_id, metric), {})
            if ts not in series:
                series[ts] = value
                inserted += 1
        devices = summarise_devices(readings)
        for seen in devices:
            self._upsert_device(seen)
        return WriteResult(rows=len(rows), inserted=inserted, devices=len(devices))

    def _upsert_device(self, seen: DeviceSeen) -> None:
        d = self.devices.get(seen.device_id)
        if d is None:
            self.devices[seen.device_id] = DeviceRecord(
                seen.device_id, seen.site, seen.type, seen.gateway_id,
                seen.first_ms, seen.last_ms, seen.metrics,
            )  # fmt: skip
            return
        if d.last_seen is not None and not (
            seen.last_ms > d.last_seen
            or (d.first_seen is not None and seen.first_ms < d.first_seen)
            or not set(seen.metrics) <= set(d.metrics)
        ):
            return  # tells nothing new: a replay
        if d.last_seen is None or seen.last_ms >= d.last_seen:
            d.site, d.gateway_id = seen.site, seen.gateway_id
            d.type = seen.type if seen.type is not None else d.type
        elif d.type is None:
            d.type = seen.type
        d.first_seen = seen.first_ms if d.first_seen is None else min(d.first_seen, seen.first_ms)
        d.last_seen = seen.last_ms if d.last_seen is None else max(d.last_seen, seen.last_ms)
        d.metrics = tuple(sorted(set(d.metrics) | set(seen.metrics)))

    async def set_device_state(
        self, device_id: str, site: str, gateway_id: str, state: str, ts_ms: int
    ) -> bool:
        new = device_state(state)
        d = self.devices.get(device_id)
        if d is None:
            self.devices[device_id] = DeviceRecord(
                device_id, site, None, gateway_id, ts_ms, None, (), new, ts_ms
            )
            return True
        if not self._applies(d, ts_ms):
            return False
        old = d.state
        d.site, d.gateway_id, d.state, d.state_ts = site, gateway_id, new, ts_ms
        return new != old

    async def mark_presence(self, device_id: str, state: str, ts_ms: int) -> bool:
        new = device_state(state)
        d = self.devices.get(device_id)
        if d is None or d.state == new or not self._applies(d, ts_ms):
            return False
        d.state, d.state_ts = new, ts_ms
        return True

    def _applies(self, d: DeviceRecord, ts_ms: int) -> bool:
        """A status as of ``ts_ms`` is no older than the newest applied (or that one is frozen)."""
        return d.state_ts is None or d.state_ts <= ts_ms or self._frozen(d.state_ts)

    def _frozen(self, state_ts: int) -> bool:
        return state_ts > self.now_ms() + _FROZEN_AHEAD_MS

    # -- rollups -------------------------------------------------------------------------------

    async def recompute_rollups(self, buckets: Iterable[BucketKey]) -> int:
        return self.rollups.recompute(distinct_buckets(buckets))

    async def rebuild_rollups(self, since_ms: int, until_ms: int | None = None) -> int:
        if until_ms is None:
            if not self.partitions:
                return 0
            end = max(d.end_ms for d in self.partitions)
        else:
            end = bucket_ceil(until_ms)
        return self.rollups.rebuild(rollup_bucket_ms(since_ms), end)

    async def recompute_tier(self, name: str, buckets: Iterable[BucketKey]) -> int:
        coarse = self._coarse(name)
        return coarse.recompute(coarser_buckets(buckets, coarse.tier))

    async def rebuild_tier(self, name: str, since_ms: int, until_ms: int) -> int:
        coarse = self._coarse(name)
        width = coarse.tier.width_ms
        return coarse.rebuild(coarse.tier.bucket(since_ms), bucket_ceil(until_ms, width))

    def _coarse(self, name: str) -> MemoryTier:
        tier(name)  # an unknown name: the same error as PostgreSQL's adapter
        found = self.tiers.get(name)
        if found is None:
            raise ValueError(f"tier {name} is recomputed from readings: use the 1-minute methods")
        return found

    async def drop_expired_rollups(
        self, now_ms: int, retention_days: Mapping[str, int]
    ) -> dict[str, int]:
        deleted = {}
        for name, days in retention_days.items():
            rows = self.rollups if tier(name).name == "1m" else self.tiers[name]
            deleted[name] = rows.drop_before(retention_cutoff_ms(now_ms, days))
        return deleted

    async def buckets_between(self, since_ms: int, until_ms: int) -> list[BucketKey]:
        return sorted(
            {
                (device_id, metric, rollup_bucket_ms(ts))
                for (device_id, metric), series in self.readings.items()
                for ts in series
                if since_ms <= ts < until_ms
            }
        )

    # -- alerts --------------------------------------------------------------------------------

    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None:
        if t.kind not in ("raised", "updated", "cleared"):
            raise ValueError(f"unknown alert transition: {t.kind!r}")
        open_ = self.open_alert(t.device_id, t.gateway_id, t.rule)
        if t.kind == "cleared":
            if open_ is None:
                return None
            self.add_to_outbox(open_.id, "resolved")
            return self.put_alert(
                open_, state="cleared", cleared_at=t.ts, updated_at=max(open_.updated_at, t.ts)
            )
        if open_ is None:
            if t.kind == "updated":
                return None
            raised = self._raise(t)
            self.add_to_outbox(raised.id, "firing")
            return raised
        newer = t.ts > open_.updated_at if t.kind == "raised" else t.ts >= open_.updated_at
        if not newer:
            return open_  # a replayed or late transition: the open alert, unchanged
        if t.kind == "updated" and t.severity == "critical" and open_.severity != "critical":
            self.add_to_outbox(open_.id, "firing")  # a rise to critical is notified again
        return self.put_alert(
            open_,
            occurrences=open_.occurrences + (1 if t.kind == "raised" else 0),
            severity=t.severity,
            metric=t.metric,
            value=t.value,
            message=t.message,
            updated_at=t.ts,
        )

    def add_to_outbox(self, alert_id: int, event: str) -> None:
        """A notification owed for the transition just applied (as `Database` in its
        transaction)."""
        self.notification_outbox.append((next(self._outbox_ids), alert_id, event))

    def _raise(self, t: AlertTransitionLike) -> AlertRow:
        row = AlertRow(
            id=next(self._alert_ids), device_id=t.device_id, gateway_id=t.gateway_id,
            rule=t.rule, severity=t.severity, state="active", acknowledged=False,
            ack_by=None, ack_at=None, ack_comment=None, metric=t.metric, value=t.value,
            message=t.message, raised_at=t.ts, updated_at=t.ts, cleared_at=None,
            cleared_by=None, occurrences=1,
        )  # fmt: skip
        shelf = self._live_shelf(_alert_key(t.device_id, t.gateway_id, t.rule))
        if shelf is not None:  # as the trigger of db/0006: the shelf is the alarm's
            row = dataclasses.replace(
                row,
                shelved_by=shelf.shelved_by,
                shelved_at=shelf.shelved_at,
                shelved_until=shelf.shelved_until,
                shelve_reason=shelf.shelve_reason,
            )
        self.alerts[row.id] = row
        return row

    def _live_shelf(self, key: tuple[str, str, str]) -> AlertRow | None:
        now = self.now_ms()
        shelved = [
            a
            for a in self.alerts.values()
            if a.shelved(now) and _alert_key(a.device_id, a.gateway_id, a.rule) == key
        ]
        return max(shelved, key=lambda a: a.shelved_until or 0, default=None)

    def open_alert(
        self, device_id: str | None, gateway_id: str | None, rule: str
    ) -> AlertRow | None:
        key = _alert_key(device_id, gateway_id, rule)
        for row in self.alerts.values():
            if row.state == "active" and _alert_key(row.device_id, row.gateway_id, row.rule) == key:
                return row
        return None

    def put_alert(self, row: AlertRow, **changes: object) -> AlertRow:
        """``row`` with ``changes``, stored under its id."""
        new = dataclasses.replace(row, **changes)  # type: ignore[arg-type]
        self.alerts[new.id] = new
        return new

    async def list_alerts(self, state: str | None = None, limit: int = 100) -> list[AlertRow]:
        if state is not None and state not in ALERT_STATES:
            raise ValueError(f"unknown alert state: {state!r}")
        if not 1 <= limit <= _MAX_ALERTS:
            raise ValueError(f"limit must be within 1..{_MAX_ALERTS}")
        rows = [a for a in self.alerts.values() if state is None or a.state == state]
        return sorted(rows, key=lambda a: (a.raised_at, a.id), reverse=True)[:limit]
