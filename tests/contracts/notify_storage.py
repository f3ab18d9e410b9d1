"""The contract of the notification storage port (`hub.notify.store.NotifyStore`), one suite for
every adapter: `NotifyStorageContract` is subclassed with a `notify_stores` fixture by
tests/unit/test_notify_storage_memory.py (`hub.storage.notify_memory.MemoryNotifyStore`) and by
tests/integration/test_notify_storage_postgres.py (`PostgresNotifyStore`).

Alerts and devices go in through the worker's port (`apply_alert`, `write_readings`), which also
writes the outbox; acknowledging and clearing by hand through the web app's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from hub.notify.config import ConfigError, parse_channel, parse_config, parse_route
from hub.notify.store import NotifyStore
from hub.rules.model import AlertTransition
from hub.storage.model import AlertRow, AlertTransitionLike, WriteResult
from protocol import NormalisedReading
from tests.support.readings import make_reading

LEASE = 150_000


class Alerts(Protocol):
    async def write_readings(self, readings: list[NormalisedReading]) -> WriteResult: ...
    async def apply_alert(self, t: AlertTransitionLike) -> AlertRow | None: ...
    async def acknowledge_alert(
        self, alert_id: int, by: str, comment: str | None
    ) -> AlertRow | None: ...
    async def clear_alert(self, alert_id: int, by: str) -> AlertRow | None: ...


@dataclass
class NotifyStores:
    store: NotifyStore
    alerts: Alerts


def _config(**route: Any) -> Any:
    return parse_config(
        {
            "channels": [
                {"name": n, "type": "webhook", "url": f"http://127.0.0.1:9/{n}"} for n in ("a", "b")
            ],
            "routes": [{"name": "r", "channels": ["a"], "group_window_s": 0, **route}],
        }
    )


def _raised(device: str, ts: int, kind: str = "raised", severity: str = "critical") -> Any:
    return AlertTransition(
        kind=kind,  # type: ignore[arg-type]
        device_id=device,
        gateway_id="gw-1",
        rule="temp.threshold",
        severity=severity,  # type: ignore[arg-type]
        metric="temp",
        value=91.0,
        message="temp 91 above 90",
        ts=ts,
    )


class NotifyStorageContract:
    @pytest.fixture
    def notify_stores(self) -> NotifyStores:
        raise NotImplementedError

    async def _raise(self, s: NotifyStores, device: str, now: int, **kw: Any) -> AlertRow:
        await s.alerts.write_readings(
            [make_reading(device, now - 1000, {"temp": 91.0}, site="plant-7", type="oven")]
        )
        row = await s.alerts.apply_alert(_raised(device, now, **kw))
        assert row is not None
        return row

    async def test_a_new_alert_is_delivered_once_with_its_facts(
        self, notify_stores: NotifyStores
    ) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(match={"site": ["plant-7"], "device_type": ["oven"]})
        await s.store.seed_from_file(config)
        row = await self._raise(s, "oven-1", now)
        await s.alerts.apply_alert(_raised("oven-1", now + 1))  # one more occurrence: no more
        assert await s.store.route_outbox(config, now, 10) == 1
        assert await s.store.route_outbox(config, now, 10) == 0
        (d,) = await s.store.claim_due(now, LEASE, 10)
        assert (d.alert.id, d.event, d.channel, d.route) == (row.id, "firing", "a", "r")
        assert (d.site, d.device_type, d.attempts) == ("plant-7", "oven", 1)
        assert d.idempotency_key.startswith(f"alert-{row.id}.firing")
        assert await s.store.claim_due(now, LEASE, 10) == []  # leased
        (again,) = await s.store.claim_due(now + LEASE, LEASE, 10)  # the lease ran out
        assert (again.idempotency_key, again.attempts) == (d.idempotency_key, 2)
        await s.store.record([again], "delivered", "HTTP 200", now_ms=now + LEASE)
        assert await s.store.claim_due(now + 2 * LEASE, LEASE, 10) == []
        (attempt,) = await s.store.attempts_for_alert(row.id)
        assert (attempt.outcome, attempt.detail, attempt.channel) == ("delivered", "HTTP 200", "a")

    async def test_a_busy_channel_is_left_alone(self, notify_stores: NotifyStores) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(channels=["a", "b"])
        await s.store.seed_from_file(config)
        await self._raise(s, "oven-9", now)
        await s.store.route_outbox(config, now, 10)
        (b,) = await s.store.claim_due(now, LEASE, 10, skip_channels={"a"})
        assert b.channel == "b"
        (a,) = await s.store.claim_due(now, LEASE, 10)
        assert a.channel == "a"

    async def test_a_rise_to_critical_is_notified(self, notify_stores: NotifyStores) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(match={"severity": ["critical"]})
        await s.store.seed_from_file(config)
        row = await self._raise(s, "oven-10", now, severity="warning")
        await s.store.route_outbox(config, now, 10)
        assert await s.store.claim_due(now, LEASE, 10) == []  # a warning: not for this route
        await s.alerts.apply_alert(_raised("oven-10", now + 1000, kind="updated"))
        await s.alerts.apply_alert(_raised("oven-10", now + 2000, kind="updated"))  # still critical
        assert await s.store.route_outbox(config, now + 2000, 10) == 1
        (d,) = await s.store.claim_due(now + 2000, LEASE, 10)
        assert (d.alert.id, d.alert.severity, d.event) == (row.id, "critical", "firing")

    async def test_a_route_that_does_not_match_makes_nothing(
        self, notify_stores: NotifyStores
    ) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(match={"severity": ["critical"], "site": ["elsewhere"]})
        await s.store.seed_from_file(config)
        await self._raise(s, "oven-2", now)
        assert await s.store.route_outbox(config, now, 10) == 1
        assert await s.store.claim_due(now, LEASE, 10) == []

    async def test_a_failure_waits_for_its_retry(self, notify_stores: NotifyStores) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config()
        await s.store.seed_from_file(config)
        row = await self._raise(s, "oven-3", now)
        await s.store.route_outbox(config, now, 10)
        claimed = await s.store.claim_due(now, LEASE, 10)
        await s.store.record(claimed, "failed", "HTTP 503", now_ms=now, retry_at_ms=now + 4000)
        assert await s.store.claim_due(now + 3999, LEASE, 10) == []
        (retry,) = await s.store.claim_due(now + 4000, LEASE, 10)
        await s.store.record([retry], "suppressed", "shelved", now_ms=now + 4000)
        outcomes = [(a.outcome, a.detail) for a in await s.store.attempts_for_alert(row.id)]
        assert outcomes == [("failed", "HTTP 503"), ("suppressed", "shelved")]
        assert await s.store.claim_due(now + 10_000, LEASE, 10) == []

    async def test_grouping_holds_what_comes_inside_the_window(
        self, notify_stores: NotifyStores
    ) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(group_window_s=30)
        await s.store.seed_from_file(config)
        await self._raise(s, "oven-4", now)
        await s.store.route_outbox(config, now, 10)
        await self._raise(s, "oven-5", now + 1000)
        await self._raise(s, "oven-6", now + 2000)
        await s.store.route_outbox(config, now + 2000, 10)
        assert len(await s.store.claim_due(now + 2000, LEASE, 10)) == 1
        assert len(await s.store.claim_due(now + 30_000, LEASE, 10)) == 2

    async def test_escalation_repeat_acknowledgement_and_resolved(
        self, notify_stores: NotifyStores
    ) -> None:
        s, now = notify_stores, int(time.time() * 1000)
        config = _config(channels=["a", "b"], escalate_after_s=60, repeat_interval_s=0)
        await s.store.seed_from_file(config)
        row = await self._raise(s, "oven-7", now)
        quiet = await self._raise(s, "oven-8", now)
        await s.store.route_outbox(config, now, 10)
        await s.alerts.acknowledge_alert(quiet.id, "olga", None)
        assert await s.store.advance_schedules(config, now + 59_999, 10) == 0
        assert await s.store.advance_schedules(config, now + 60_000, 10) == 1
        claimed = await s.store.claim_due(now + 60_000, LEASE, 10)
        escalated = [d for d in claimed if d.event == "escalation"]
        assert [(d.alert.id, d.channel) for d in escalated] == [(row.id, "b")]
        await s.store.record(claimed, "delivered", None, now_ms=now + 60_000)
        assert await s.store.advance_schedules(config, now + 600_000, 10) == 0
        await s.alerts.apply_alert(_raised("oven-7", now + 700_000, kind="cleared"))
        await s.alerts.clear_alert(quiet.id, "olga")
        await s.store.route_outbox(config, now + 700_000, 10)
        resolved = await s.store.claim_due(now + 700_000, LEASE, 10)
        assert sorted((d.alert.id, d.channel) for d in resolved) == [
            (row.id, "a"),
            (row.id, "b"),
            (quiet.id, "a"),  # told at first, never escalated (acknowledged)
        ]
        assert {d.event for d in resolved} == {"resolved"}

    async def test_configuration_entries(self, notify_stores: NotifyStores) -> None:
        store = notify_stores.store
        await store.seed_from_file(_config())
        with pytest.raises(ConfigError, match="HUB_NOTIFICATIONS_FILE"):
            await store.put_channel(
                parse_channel({"name": "a", "type": "slack", "url": "http://x/"})
            )
        with pytest.raises(ConfigError, match="HUB_NOTIFICATIONS_FILE"):
            await store.delete_route("r")
        assert await store.put_channel(
            parse_channel({"name": "c", "type": "teams", "url": "http://t/x"})
        )
        assert not await store.put_channel(
            parse_channel({"name": "c", "type": "teams", "url": "http://t/y"})
        )
        with pytest.raises(ConfigError, match=r"^channels\[1\]: unknown channel 'z'"):
            await store.put_route(parse_route({"name": "mine", "channels": ["c", "z"]}))
        assert await store.put_route(parse_route({"name": "mine", "channels": ["c"]}))
        with pytest.raises(ConfigError, match="used by route"):
            await store.delete_channel("c")
        config = await store.load_config()
        assert [r.name for r in config.routes] == ["r", "mine"]
        assert [(e.name, e.source) for e in await store.channel_entries()] == [
            ("a", "file"),
            ("b", "file"),
            ("c", "api"),
        ]
        # A file that drops a channel an API route uses is refused whole.
        assert await store.put_route(parse_route({"name": "uses-b", "channels": ["b"]}))
        with pytest.raises(ConfigError, match="unknown channel 'b'"):
            await store.seed_from_file(
                parse_config({"channels": [{"name": "a", "type": "webhook", "url": "http://h/"}]})
            )
        assert [e.name for e in await store.channel_entries()] == ["a", "b", "c"]
        assert await store.delete_route("uses-b")
        assert await store.delete_route("mine")
        assert await store.delete_channel("c")
        assert not await store.delete_channel("c")
        await store.seed_from_file(parse_config({}))
        assert await store.channel_entries() == []
