"""Notifications against real PostgreSQL and a real HTTP receiver: the outbox written with the
transition, delivery with retries, grouping, escalation, suppression, and two dispatchers
sending each notification once. The dispatchers' clock is the test's, so pacing is exact."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import asyncpg
import pytest

from hub.notify.config import parse_config
from hub.notify.dispatcher import Dispatcher
from hub.notify.senders import ChannelSender
from hub.rules.model import AlertTransition
from hub.storage.notify_postgres import PostgresNotifyStore
from hub.storage.postgres import Database
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


@dataclass
class Receiver:
    """An HTTP receiver: records each JSON body; answers `status` (503 while "down")."""

    status: int = 200
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0
    url: str = ""

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        if self.status != 200:
            self.refused += 1
            return aiohttp.web.Response(status=self.status, text="receiver down for maintenance")
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        return aiohttp.web.Response(status=200, text="ok")

    def keys(self) -> list[str]:
        return [n["idempotency_key"] for b in self.bodies for n in b["notifications"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = aiohttp.web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def store(postgres: str, pg: asyncpg.Connection) -> AsyncIterator[PostgresNotifyStore]:
    s, pool = await PostgresNotifyStore.connect(postgres, max_size=4)
    yield s
    await pool.close()


@pytest.fixture
async def sender() -> AsyncIterator[ChannelSender]:
    s = ChannelSender(public_url=None)
    yield s
    await s.close()


class Clock:
    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.ms


def _raised(device: str, ts: int, rule: str = "temp_high", kind: str = "raised") -> AlertTransition:
    return AlertTransition(
        kind=kind,  # type: ignore[arg-type]
        device_id=device,
        gateway_id="gw-1",
        rule=rule,
        severity="critical",
        metric="temperature",
        value=93.5,
        message=f"temperature 93.5 above 90 ({device})",
        ts=ts,
    )


def _dispatcher(
    store: PostgresNotifyStore, clock: Clock, sender: ChannelSender, **kwargs: Any
) -> Dispatcher:
    return Dispatcher(
        store,
        sender,
        clock_ms=clock,
        public_url="https://hub.example",
        retry_max_s=1,
        **kwargs,
    )


async def _seed(store: PostgresNotifyStore, url: str, **route: Any) -> None:
    await store.seed_from_file(
        parse_config(
            {
                "channels": [
                    {"name": "ops", "type": "webhook", "url": url, "timeout_s": 2},
                    {"name": "boss", "type": "webhook", "url": url + "?boss=1", "timeout_s": 2},
                ],
                "routes": [{"name": "crit", "match": {"severity": ["critical"]}, **route}],
            }
        )
    )


async def test_outbox_rows_are_written_with_the_transition(
    database: Database, pg: asyncpg.Connection
) -> None:
    ts = int(time.time() * 1000)
    row = await database.apply_alert(_raised("d1", ts))
    assert row is not None
    await database.apply_alert(_raised("d1", ts))  # a replay: no second notification
    await database.apply_alert(_raised("d1", ts + 1000))  # one more occurrence: none either
    await database.apply_alert(_raised("d1", ts + 2000, kind="cleared"))
    await database.apply_alert(_raised("d1", ts + 3000, kind="cleared"))  # nothing open
    events = await pg.fetch("SELECT alert_id, event FROM notification_outbox ORDER BY id")
    assert [(e["alert_id"], e["event"]) for e in events] == [
        (row.id, "firing"),
        (row.id, "resolved"),
    ]
    again = await database.apply_alert(_raised("d2", ts))
    assert again is not None
    await database.clear_alert(again.id, "olga")
    await database.clear_alert(again.id, "olga")  # already cleared: nothing more
    events = await pg.fetch("SELECT event FROM notification_outbox WHERE alert_id = $1", again.id)
    assert [e["event"] for e in events] == ["firing", "resolved"]


async def test_a_firing_and_a_resolved_message_reach_the_receiver(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"])
    clock = Clock()
    dispatcher = _dispatcher(store, clock, sender)
    row = await database.apply_alert(_raised("pump-1", clock.ms))
    assert row is not None
    assert await dispatcher.run_once() == 1
    (body,) = receiver.bodies
    assert body["version"] == "iot-notify/1"
    assert body["status"] == "firing"
    (notice,) = body["notifications"]
    assert notice["event"] == "firing"
    assert notice["alert"]["id"] == row.id
    assert notice["alert"]["message"] == "temperature 93.5 above 90 (pump-1)"
    assert notice["links"]["device"] == "https://hub.example/device/pump-1"
    assert receiver.headers[0]["Idempotency-Key"] == body["idempotency_key"]
    await database.apply_alert(_raised("pump-1", clock.ms + 1000, kind="cleared"))
    clock.ms += 31_000  # past the group window the firing message opened
    assert await dispatcher.run_once() == 1
    assert receiver.bodies[1]["status"] == "resolved"
    assert receiver.bodies[1]["notifications"][0]["event"] == "resolved"
    attempts = await store.attempts_for_alert(row.id)
    assert [(a.event, a.channel, a.outcome) for a in attempts] == [
        ("firing", "ops", "delivered"),
        ("resolved", "ops", "delivered"),
    ]
    assert await dispatcher.run_once() == 0  # nothing sent twice
    assert len(receiver.bodies) == 2


async def test_a_receiver_down_for_a_while_gets_each_notification_once(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"], group_window_s=0)
    clock = Clock()
    dispatcher = _dispatcher(store, clock, sender)
    receiver.status = 503
    ids = []
    for n in range(3):
        row = await database.apply_alert(_raised(f"d{n}", clock.ms))
        assert row is not None
        ids.append(row.id)
    for _ in range(4):  # each pass fails; the retry waits for the backoff
        await dispatcher.run_once()
        clock.ms += 1000
    assert receiver.refused >= 2
    receiver.status = 200
    for _ in range(3):
        await dispatcher.run_once()
        clock.ms += 1000
    assert sorted(receiver.keys()) == sorted(
        f"alert-{i}.firing{n + 1}.ops" for n, i in enumerate(ids)
    )
    attempts = await store.attempts_for_alert(ids[0])
    assert attempts[-1].outcome == "delivered"
    assert {a.outcome for a in attempts[:-1]} == {"failed"}
    assert attempts[0].detail == "HTTP 503: receiver down for maintenance"


async def test_a_receiver_that_does_not_answer_times_out(
    database: Database, store: PostgresNotifyStore, sender: ChannelSender
) -> None:
    hung = asyncio.Event()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hung.wait()
        writer.close()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await store.seed_from_file(
        parse_config(
            {
                "channels": [
                    {
                        "name": "slow",
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{port}/",
                        "timeout_s": 0.5,
                    }
                ],
                "routes": [{"channels": ["slow"]}],
            }
        )
    )
    clock = Clock()
    row = await database.apply_alert(_raised("d1", clock.ms))
    assert row is not None
    started = time.monotonic()
    await _dispatcher(store, clock, sender).run_once()
    assert time.monotonic() - started < 10
    (attempt,) = await store.attempts_for_alert(row.id)
    assert (attempt.outcome, attempt.detail) == ("failed", "timed out")
    hung.set()
    server.close()


async def test_alerts_inside_the_group_window_go_in_one_message(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"], group_window_s=30)
    clock = Clock()
    dispatcher = _dispatcher(store, clock, sender)
    await database.apply_alert(_raised("d0", clock.ms))
    await dispatcher.run_once()
    assert len(receiver.bodies) == 1  # the first at once
    for n in (1, 2, 3):
        clock.ms += 1000
        await database.apply_alert(_raised(f"d{n}", clock.ms))
        await dispatcher.run_once()
    assert len(receiver.bodies) == 1  # the rest wait for the window's end
    clock.ms += 30_000
    await dispatcher.run_once()
    assert len(receiver.bodies) == 2
    devices = [n["alert"]["device_id"] for n in receiver.bodies[1]["notifications"]]
    assert sorted(devices) == ["d1", "d2", "d3"]


async def test_escalation_and_acknowledgement(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(
        store,
        receiver.url,
        channels=["ops", "boss"],
        escalate_after_s=600,
        repeat_interval_s=0,
        group_window_s=0,
    )
    clock = Clock()
    dispatcher = _dispatcher(store, clock, sender)
    first = await database.apply_alert(_raised("d1", clock.ms))
    second = await database.apply_alert(_raised("d2", clock.ms))
    assert first is not None
    assert second is not None
    await dispatcher.run_once()
    assert sorted(receiver.keys()) == sorted(
        [f"alert-{first.id}.firing1.ops", f"alert-{second.id}.firing2.ops"]
    )
    await database.acknowledge_alert(second.id, "olga", None)
    clock.ms += 600_000
    await dispatcher.run_once()
    assert receiver.keys()[2:] == [f"alert-{first.id}.crit.escalation2.boss"]
    assert receiver.bodies[-1]["notifications"][0]["event"] == "escalation"
    clock.ms += 600_000
    await dispatcher.run_once()
    assert len(receiver.keys()) == 3  # no tier left; the acknowledged one never escalated
    await database.apply_alert(_raised("d1", clock.ms, kind="cleared"))
    await dispatcher.run_once()
    # The clear goes to both tiers that heard of it.
    assert sorted(receiver.keys()[3:]) == sorted(
        f"alert-{first.id}.resolved3.{c}" for c in ("ops", "boss")
    )


async def test_repeat_of_an_unacknowledged_alert(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"], repeat_interval_s=3600, group_window_s=0)
    clock = Clock()
    dispatcher = _dispatcher(store, clock, sender)
    row = await database.apply_alert(_raised("d1", clock.ms))
    assert row is not None
    await dispatcher.run_once()
    clock.ms += 3_599_000
    await dispatcher.run_once()
    assert len(receiver.bodies) == 1
    clock.ms += 1000
    await dispatcher.run_once()
    assert receiver.keys()[1] == f"alert-{row.id}.crit.repeat1.ops"
    assert receiver.bodies[1]["notifications"][0]["event"] == "repeat"


class ShelvedAll:
    async def suppressed_because(
        self, alert_id: int, device_id: str | None, gateway_id: str | None, at_ms: int
    ) -> str | None:
        return f"shelved by olga ({device_id})"


async def test_a_suppressed_notification_is_recorded_not_sent(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"])
    clock = Clock()
    row = await database.apply_alert(_raised("d1", clock.ms))
    assert row is not None
    await _dispatcher(store, clock, sender, suppression=ShelvedAll()).run_once()
    assert receiver.bodies == []
    (attempt,) = await store.attempts_for_alert(row.id)
    assert (attempt.outcome, attempt.detail) == ("suppressed", "shelved by olga (d1)")


async def test_two_dispatchers_send_each_notification_once(
    database: Database,
    postgres: str,
    store: PostgresNotifyStore,
    receiver: Receiver,
    sender: ChannelSender,
) -> None:
    await _seed(store, receiver.url, channels=["ops"], group_window_s=0)
    other, other_pool = await PostgresNotifyStore.connect(postgres, max_size=4)
    clock = Clock()
    dispatchers = [_dispatcher(store, clock, sender), _dispatcher(other, clock, sender)]
    ids = []
    for n in range(40):
        row = await database.apply_alert(_raised(f"dev-{n}", clock.ms))
        assert row is not None
        ids.append(row.id)

    async def drain(d: Dispatcher) -> None:
        while await d.run_once():
            pass

    async def all_arrived() -> bool:
        await asyncio.gather(*(drain(d) for d in dispatchers))
        return len(receiver.keys()) >= len(ids)

    await async_wait_until(all_arrived, 30, "every notification")
    keys = receiver.keys()
    assert len(keys) == len(set(keys)) == len(ids)
    assert sum(d.counters.delivered_total for d in dispatchers) == len(ids)
    assert all(d.counters.delivered_total > 0 for d in dispatchers) or len(receiver.bodies) >= 1
    await other_pool.close()


async def test_a_lease_left_by_a_dead_dispatcher_is_taken_over(
    database: Database, store: PostgresNotifyStore, receiver: Receiver, sender: ChannelSender
) -> None:
    await _seed(store, receiver.url, channels=["ops"])
    clock = Clock()
    row = await database.apply_alert(_raised("d1", clock.ms))
    assert row is not None
    config = await store.load_config()
    await store.route_outbox(config, clock.ms, 10)
    (leased,) = await store.claim_due(clock.ms, 150_000, 10)  # then "killed" before sending
    dispatcher = _dispatcher(store, clock, sender)
    assert await dispatcher.run_once() == 0  # leased: nobody else sends it meanwhile
    clock.ms += 150_000
    assert await dispatcher.run_once() == 1
    assert receiver.keys() == [leased.idempotency_key]


async def test_file_entries_are_read_only_and_api_entries_checked(
    store: PostgresNotifyStore, receiver: Receiver
) -> None:
    from hub.notify.config import ConfigError, parse_channel, parse_route

    await _seed(store, receiver.url, channels=["ops"])
    with pytest.raises(ConfigError, match="HUB_NOTIFICATIONS_FILE"):
        await store.put_channel(parse_channel({"name": "ops", "type": "slack", "url": "http://x/"}))
    assert await store.put_channel(
        parse_channel({"name": "chat", "type": "slack", "url": "http://x/y"})
    )
    with pytest.raises(ConfigError, match=r"^channels\[1\]: unknown channel 'pager'"):
        await store.put_route(parse_route({"name": "r", "channels": ["chat", "pager"]}))
    assert await store.put_route(parse_route({"name": "r", "channels": ["chat"]}))
    with pytest.raises(ConfigError, match="used by route"):
        await store.delete_channel("chat")
    config = await store.load_config()
    assert [r.name for r in config.routes] == ["crit", "r"]
    assert json.dumps(sorted(e.source for e in await store.channel_entries())) == json.dumps(
        ["api", "file", "file"]
    )
    assert await store.delete_route("r")
    assert await store.delete_channel("chat")
    assert not await store.delete_channel("chat")
