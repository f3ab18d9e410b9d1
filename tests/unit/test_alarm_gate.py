"""The worker's hold on new alerts under a maintenance window (`hub.alarms.gate` in
`hub.agents.alerts.AlertPipeline`), on the in-memory stores."""

from __future__ import annotations

import json

from hub.agents.alerts import AlertPipeline
from hub.agents.retry import Retrier
from hub.alarms.expiry import ShelfExpiries
from hub.alarms.gate import WindowGate
from hub.alarms.memory import MemoryAlarmStore
from hub.alarms.windows import Once, Scope, WindowSpec
from hub.rules import AlertEngine, load_rules
from hub.storage.memory_worker import MemoryDatabase
from protocol import NormalisedReading

T0 = 1_700_000_000_000
HOUR = 3_600_000
RULE = "cnc_spindle.spindle_temp_c.threshold"


async def no_sleep(_: float) -> None:
    return None


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> float:
        return self.ms / 1000


class Events:
    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def send(self, key: bytes | None, value: bytes) -> None:
        self.sent.append(json.loads(value))

    async def publish_alert(self, event_json: str | bytes) -> bool:
        return True


def reading(device_id: str, ts: int, temp: float) -> NormalisedReading:
    return NormalisedReading(
        site="plant-a",
        device_id=device_id,
        type="cnc_spindle",
        ts=ts,
        seq=None,
        metrics={"spindle_temp_c": temp},
        gateway_id="gw1",
        received_ts=ts,
    )


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.db = MemoryDatabase(clock=self.clock)
        self.store = MemoryAlarmStore(self.db)
        self.gate = WindowGate(self.store, clock=self.clock)
        self.events = Events()
        engine = AlertEngine(load_rules(), device_offline_after_s=60, gateway_offline_after_s=30)
        self.alerts = AlertPipeline(
            engine,
            store=self.db,
            channel=self.events,
            producer=self.events,
            retrier=Retrier(sleep=no_sleep),
            gate=self.gate,
        )
        self.ts = T0

    async def window(self, suppress: str = "alerts", **scope: tuple[str, ...]) -> None:
        spec = WindowSpec("planned", suppress, Once(T0, T0 + HOUR), Scope(**scope))  # type: ignore[arg-type]
        await self.store.create_window(spec, "admin")
        await self.gate.reload()

    async def send(self, device_id: str, temp: float, after_ms: int = 1000) -> None:
        """As the worker does: written first (the device's site and type), then evaluated."""
        self.ts += after_ms
        batch = [reading(device_id, self.ts, temp)]
        await self.db.write_readings(batch)
        await self.alerts.observe_readings(batch)

    def open_alerts(self) -> list[str]:
        return sorted(a.device_id or "" for a in self.db.alerts.values() if a.state == "active")


async def test_no_new_alert_is_raised_for_a_device_under_an_alert_window() -> None:
    rig = Rig()
    await rig.window(sites=("plant-a",))
    await rig.send("cnc-1", 99.0)
    await rig.send("cnc-1", 99.5)
    assert rig.open_alerts() == []
    assert rig.events.sent == []
    assert rig.gate.held_back_total == 2  # asked again on the next sample: it was forgotten


async def test_devices_out_of_scope_raise_as_usual() -> None:
    rig = Rig()
    await rig.window(devices=("cnc-2",))
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == ["cnc-1"]


async def test_the_alert_is_raised_on_the_first_sample_after_the_window() -> None:
    rig = Rig()
    await rig.window(devices=("cnc-1",))
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == []
    rig.clock.ms = T0 + HOUR  # the window ended (its end is exclusive)
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == ["cnc-1"]
    assert [e["event"] for e in rig.events.sent] == ["raised"]


async def test_a_notifications_only_window_lets_alerts_through() -> None:
    rig = Rig()
    await rig.window("notifications", devices=("cnc-1",))
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == ["cnc-1"]


async def test_an_alert_open_before_the_window_still_clears() -> None:
    rig = Rig()
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == ["cnc-1"]
    await rig.window(devices=("cnc-1",))
    await rig.send("cnc-1", 20.0)
    await rig.send("cnc-1", 20.0, after_ms=31_000)  # clear_after_s: 30
    assert rig.open_alerts() == []
    assert [e["event"] for e in rig.events.sent] == ["raised", "cleared"]


async def test_a_window_deleted_takes_effect_at_the_next_reload() -> None:
    rig = Rig()
    await rig.window(devices=("cnc-1",))
    (w,) = await rig.store.windows()
    await rig.store.delete_window(w.id)
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == []  # the gate has not reloaded yet
    await rig.gate.reload()
    await rig.send("cnc-1", 99.0)
    assert rig.open_alerts() == ["cnc-1"]


class Live:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []

    async def publish_alert(self, event_json: str | bytes) -> bool:
        self.events.append(json.loads(event_json))
        return True


async def test_a_shelf_that_runs_out_is_published_once() -> None:
    rig = Rig()
    await rig.send("cnc-1", 99.0)
    (alert,) = rig.db.alerts.values()
    live = Live()
    expiries = ShelfExpiries(rig.store, live, lambda: rig.clock.ms)
    await rig.store.shelve_alert(alert.id, "olga", "known", T0 + 60_000)
    assert await expiries.publish() == 0
    rig.clock.ms = T0 + 60_000
    assert await expiries.publish() == 1
    assert [(e["event"], e["id"]) for e in live.events] == [("shelf_expired", alert.id)]
    rig.clock.ms += 5000
    assert await expiries.publish() == 0  # not again
