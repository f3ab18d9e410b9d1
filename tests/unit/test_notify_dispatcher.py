"""The dispatcher over the in-memory store with a recording sender: retries with backoff,
suppression, a channel that is gone, grouping into one message, counters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hub.notify.config import Channel, parse_config
from hub.notify.content import Notice
from hub.notify.dispatcher import Dispatcher, backoff_ms
from hub.notify.senders import SendResult
from hub.rules.model import AlertTransition
from hub.storage.memory_worker import MemoryDatabase
from hub.storage.notify_memory import MemoryNotifyStore

T0 = 1_767_225_600_000


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.failing = False

    async def send(
        self, channel: Channel, notices: Sequence[Notice], *, route: str | None
    ) -> SendResult:
        if self.failing:
            return SendResult(False, "HTTP 503: down")
        self.sent.append((channel.name, [n.idempotency_key for n in notices]))
        return SendResult(True, "HTTP 200")


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


class Shelved:
    async def suppressed_because(
        self, alert_id: int, device_id: str | None, gateway_id: str | None, at_ms: int
    ) -> str | None:
        return "shelved" if device_id == "d-shelved" else None


async def _setup(window: float = 0) -> tuple[MemoryDatabase, MemoryNotifyStore, Sender, Clock]:
    db = MemoryDatabase()
    clock = Clock()
    store = MemoryNotifyStore(db, clock_ms=clock)
    await store.seed_from_file(
        parse_config(
            {
                "channels": [{"name": "ops", "type": "webhook", "url": "http://h/"}],
                "routes": [{"name": "r", "channels": ["ops"], "group_window_s": window}],
            }
        )
    )
    return db, store, Sender(), clock


async def _alert(db: MemoryDatabase, device: str, ts: int) -> int:
    row = await db.apply_alert(
        AlertTransition("raised", device, "gw", "rule", "critical", "m", 1.0, "msg", ts)
    )
    assert row is not None
    return row.id


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_ms(n, 30_000) for n in (1, 2, 3, 4, 5, 6)] == [
        2000,
        4000,
        8000,
        16_000,
        30_000,
        30_000,
    ]
    assert backoff_ms(1000, 300_000) == 300_000


async def test_a_failed_send_is_retried_after_the_backoff() -> None:
    db, store, sender, clock = await _setup()
    d = Dispatcher(store, sender, clock_ms=clock, public_url=None, retry_max_s=60)
    alert_id = await _alert(db, "d1", T0)
    sender.failing = True
    assert await d.run_once() == 1
    assert await d.run_once() == 0  # waiting 2 s
    clock.ms += 2000
    assert await d.run_once() == 1
    clock.ms += 3999
    assert await d.run_once() == 0  # waiting 4 s
    sender.failing = False
    clock.ms += 1
    assert await d.run_once() == 1
    assert [k for _, keys in sender.sent for k in keys] == [f"alert-{alert_id}.firing1.ops"]
    attempts = await store.attempts_for_alert(alert_id)
    assert [a.outcome for a in attempts] == ["failed", "failed", "delivered"]
    assert (d.counters.failed_total, d.counters.delivered_total) == (2, 1)


async def test_suppressed_and_gone_channels_are_recorded_not_sent() -> None:
    db, store, sender, clock = await _setup()
    d = Dispatcher(
        store, sender, clock_ms=clock, public_url=None, retry_max_s=60, suppression=Shelved()
    )
    shelved = await _alert(db, "d-shelved", T0)
    await d.run_once()
    assert sender.sent == []
    assert [(a.outcome, a.detail) for a in await store.attempts_for_alert(shelved)] == [
        ("suppressed", "shelved")
    ]
    other = await _alert(db, "d2", T0)
    config = await store.load_config()
    await store.route_outbox(config, clock.ms, 10)
    await store.seed_from_file(parse_config({}))  # the channel and route are gone meanwhile
    await d.run_once()
    assert [(a.outcome, a.detail) for a in await store.attempts_for_alert(other)] == [
        ("failed", "channel no longer configured")
    ]
    assert d.counters.given_up_total == 1


async def test_a_group_goes_as_one_message() -> None:
    db, store, sender, clock = await _setup(window=30)
    d = Dispatcher(store, sender, clock_ms=clock, public_url=None, retry_max_s=60)
    await _alert(db, "d1", T0)
    await d.run_once()
    for n in range(2, 5):
        await _alert(db, f"d{n}", T0)
        clock.ms += 1000
        await d.run_once()
    clock.ms = T0 + 30_000
    await d.run_once()
    assert [len(keys) for _, keys in sender.sent] == [1, 3]


async def test_stop_waits_for_the_pass_in_flight_then_runs_no_more() -> None:
    db, store, _, clock = await _setup()
    release = asyncio.Event()
    started = asyncio.Event()

    class Slow(Sender):
        async def send(
            self, channel: Channel, notices: Sequence[Notice], *, route: str | None
        ) -> SendResult:
            started.set()
            await release.wait()
            return await super().send(channel, notices, route=route)

    sender = Slow()
    d = Dispatcher(store, sender, clock_ms=clock, public_url=None, retry_max_s=60)
    alert_id = await _alert(db, "d1", T0)
    running = asyncio.create_task(d.run_once())
    await started.wait()
    stopping = asyncio.create_task(d.stop())
    await asyncio.sleep(0)  # let stop() start waiting for the pass
    assert not stopping.done()
    release.set()
    assert await running == 1
    await stopping
    assert [a.outcome for a in await store.attempts_for_alert(alert_id)] == ["delivered"]
    await _alert(db, "d2", T0)
    assert await d.run_once() == 0


async def test_a_hanging_channel_holds_up_only_itself() -> None:
    db = MemoryDatabase()
    clock = Clock()
    store = MemoryNotifyStore(db, clock_ms=clock)
    await store.seed_from_file(
        parse_config(
            {
                "channels": [
                    {"name": n, "type": "webhook", "url": f"http://h/{n}"} for n in ("slow", "fast")
                ],
                "routes": [{"name": "r", "channels": ["slow", "fast"], "group_window_s": 0}],
            }
        )
    )
    release = asyncio.Event()

    class Hanging(Sender):
        async def send(
            self, channel: Channel, notices: Sequence[Notice], *, route: str | None
        ) -> SendResult:
            if channel.name == "slow":
                await release.wait()
            return await super().send(channel, notices, route=route)

    sender = Hanging()
    d = Dispatcher(store, sender, clock_ms=clock, public_url=None, retry_max_s=60)
    await _alert(db, "d1", T0)
    assert await d.run_once(wait=False) == 2

    async def fast_sent(n: int) -> None:
        for _ in range(1000):  # scheduler turns: the sends are tasks
            recorded = [
                a
                for alert_id in (1, 2)
                for a in await store.attempts_for_alert(alert_id)
                if a.channel == "fast"
            ]
            if len(recorded) >= n:
                await asyncio.sleep(0)  # and its task's done callback
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{n} message(s) on 'fast' never recorded")

    await fast_sent(1)
    await _alert(db, "d2", T0)
    # The next pass sends d2 on "fast" while "slow" still hangs, and leaves "slow" alone.
    assert await d.run_once(wait=False) == 1
    await fast_sent(2)
    assert not any(name == "slow" for name, _ in sender.sent)
    release.set()
    await d.drain()
    assert await d.run_once() == 1  # d2 on "slow", now that its channel is free
    assert sorted(name for name, _ in sender.sent) == ["fast", "fast", "slow", "slow"]
