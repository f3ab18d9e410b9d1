"""The notifications API on the real web process and PostgreSQL: who may read and change
channels and routes, bad input refused naming the field, secrets masked and never logged, file
entries read-only, "send test message" against a real HTTP receiver, and an alert's attempts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp.web
import asyncpg
import httpx
import pytest

from hub.notify.config import parse_config
from hub.notify.dispatcher import Dispatcher
from hub.notify.senders import ChannelSender
from hub.rules.model import AlertTransition
from hub.storage.notify_postgres import PostgresNotifyStore
from hub.storage.postgres import Database
from tests.integration.conftest import PostgresServer
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration

SECRET = "hunter2-smtp-password"


@pytest.fixture(scope="module")
def dsn(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.own_database("iot_test_notify_api") as name:
        yield name


@pytest.fixture(scope="module")
def tokens(dsn: str) -> Tokens:
    return asyncio.run(create_tokens(dsn))


@pytest.fixture(scope="module")
def web(
    dsn: str, redis_url: str, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    proc = WebProcess(
        tmp_path_factory.mktemp("web"),
        {
            "HUB_DATABASE_URL": dsn,
            "HUB_REDIS_URL": redis_url,
            "HUB_PUBLIC_URL": "https://hub.example",
        },
    ).start()
    yield proc
    code = proc.stop()
    log = proc.log()
    assert SECRET not in log
    assert code in (0, -signal.SIGTERM), log[-3000:]


@pytest.fixture
async def client(web: WebProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=30) as c:
        yield c


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresNotifyStore]:
    s, pool = await PostgresNotifyStore.connect(dsn)
    await pool.execute("TRUNCATE notification_routes, notification_channels")
    yield s
    await pool.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
        if request.path == "/down":
            return aiohttp.web.Response(status=502, text="bad gateway")
        bodies.append(await request.json())
        return aiohttp.web.Response(text="ok")

    app = aiohttp.web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", bodies
    await runner.cleanup()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


MAIL = {
    "name": "night-mail",
    "type": "email",
    "host": "smtp.example",
    "sender": "hub@example.com",
    "to": ["ops@example.com"],
    "username": "hub",
    "password": SECRET,
}


async def test_reading_needs_operator_and_changing_needs_admin(
    client: httpx.AsyncClient, tokens: Tokens, store: PostgresNotifyStore
) -> None:
    url = f"{API}/notification-channels"
    assert (await client.get(url)).status_code == 401
    viewer = await client.get(url, headers=bearer(tokens.viewer))
    assert viewer.status_code == 403
    assert "operator or admin" in viewer.json()["detail"]
    assert (await client.get(url, headers=bearer(tokens.operator))).json() == {"items": []}
    made = await client.post(url, json=MAIL, headers=bearer(tokens.operator))
    assert made.status_code == 403
    assert (await client.get(url, headers=bearer(tokens.admin))).json() == {"items": []}


async def test_secrets_are_masked_kept_and_audited(
    client: httpx.AsyncClient, tokens: Tokens, store: PostgresNotifyStore, dsn: str
) -> None:
    admin = bearer(tokens.admin)
    made = await client.post(f"{API}/notification-channels", json=MAIL, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["spec"]["password"] == "********"
    listed = (await client.get(f"{API}/notification-channels", headers=admin)).json()
    assert SECRET not in str(listed)
    (entry,) = listed["items"]
    assert entry["source"] == "api"
    # Sending the masked form back changes the rest and keeps the password.
    changed = {**entry["spec"], "to": ["night@example.com"]}
    put = await client.put(f"{API}/notification-channels/night-mail", json=changed, headers=admin)
    assert put.status_code == 200, put.text
    stored = (await store.load_config()).channel("night-mail")
    assert stored is not None
    assert stored.model_dump()["password"] == SECRET
    assert stored.model_dump()["to"] == ["night@example.com"]
    again = await client.post(f"{API}/notification-channels", json=MAIL, headers=admin)
    assert again.status_code == 409
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT action, target, details::text AS details FROM audit_log "
            "WHERE action LIKE 'notification.%' ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(r["action"], r["target"]) for r in rows][-2:] == [
        ("notification.channel.create", "night-mail"),
        ("notification.channel.update", "night-mail"),
    ]
    assert all(SECRET not in r["details"] for r in rows)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("notification-channels", {"name": "x", "type": "webhook", "url": "ftp://h/"}, "url"),
        ("notification-channels", {"name": "x", "type": "fax"}, "type"),
        ("notification-routes", {"name": "r", "channels": ["ghost"]}, "channels[0]"),
        (
            "notification-routes",
            {"name": "r", "match": {"severity": ["fatal"]}, "channels": ["hook"]},
            "match.severity[0]",
        ),
        (
            "notification-routes",
            {"name": "r", "match": {"site": []}, "channels": ["hook"]},
            "match.site",
        ),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    tokens: Tokens,
    store: PostgresNotifyStore,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    admin = bearer(tokens.admin)
    hook = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/h"}
    assert (await client.post(f"{API}/notification-channels", json=hook, headers=admin)).is_success
    answer = await client.post(f"{API}/{path}", json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"body field {field}:"), answer.json()
    routes = (await client.get(f"{API}/notification-routes", headers=admin)).json()["items"]
    assert routes == []  # nothing applied
    channels = (await client.get(f"{API}/notification-channels", headers=admin)).json()["items"]
    assert [c["name"] for c in channels] == ["hook"]


async def test_file_entries_are_read_only_and_a_used_channel_stays(
    client: httpx.AsyncClient, tokens: Tokens, store: PostgresNotifyStore
) -> None:
    await store.seed_from_file(
        parse_config(
            {
                "channels": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/h"}],
                "routes": [{"name": "crit", "channels": ["ops"]}],
            }
        )
    )
    admin = bearer(tokens.admin)
    changed = {"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/other"}
    put = await client.put(f"{API}/notification-channels/ops", json=changed, headers=admin)
    assert put.status_code == 409
    assert "HUB_NOTIFICATIONS_FILE" in put.json()["detail"]
    assert (
        await client.delete(f"{API}/notification-routes/crit", headers=admin)
    ).status_code == 409
    route = {"name": "mine", "channels": ["ops"], "escalate_after_s": 600}
    made = await client.post(f"{API}/notification-routes", json=route, headers=admin)
    assert made.status_code == 201, made.text
    routes = await client.get(f"{API}/notification-routes", headers=bearer(tokens.operator))
    assert [(r["name"], r["source"]) for r in routes.json()["items"]] == [
        ("crit", "file"),
        ("mine", "api"),
    ]
    assert (
        await client.delete(f"{API}/notification-routes/mine", headers=admin)
    ).status_code == 204
    assert (
        await client.delete(f"{API}/notification-routes/mine", headers=admin)
    ).status_code == 404


async def test_send_test_message(
    client: httpx.AsyncClient,
    tokens: Tokens,
    store: PostgresNotifyStore,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    base, bodies = receiver
    admin = bearer(tokens.admin)
    for name, path in (("good", "/hook"), ("bad", "/down")):
        hook = {"name": name, "type": "webhook", "url": base + path, "format": "alertmanager"}
        assert (
            await client.post(f"{API}/notification-channels", json=hook, headers=admin)
        ).is_success
    sent = await client.post(f"{API}/notification-channels/good/test", headers=admin)
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivered"] is True
    (body,) = bodies
    assert body["version"] == "4"
    assert body["alerts"][0]["labels"]["alertname"] == "notification_test"
    assert body["alerts"][0]["annotations"]["idempotency_key"] == sent.json()["idempotency_key"]
    failed = await client.post(f"{API}/notification-channels/bad/test", headers=admin)
    assert failed.json() == {
        "channel": "bad",
        "delivered": False,
        "detail": "HTTP 502: bad gateway",
        "idempotency_key": failed.json()["idempotency_key"],
    }
    assert (
        await client.post(f"{API}/notification-channels/none/test", headers=admin)
    ).status_code == 404
    assert (
        await client.post(f"{API}/notification-channels/good/test", headers=bearer(tokens.operator))
    ).status_code == 403


async def test_an_alerts_attempts(
    client: httpx.AsyncClient,
    tokens: Tokens,
    store: PostgresNotifyStore,
    dsn: str,
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    base, bodies = receiver
    await store.seed_from_file(
        parse_config(
            {
                "channels": [{"name": "ops", "type": "webhook", "url": base + "/hook"}],
                "routes": [{"channels": ["ops"]}],
            }
        )
    )
    db = await Database.connect(dsn)
    now = int(time.time() * 1000)
    row = await db.apply_alert(
        AlertTransition(
            "raised", f"dev-{now}", "gw", "temp_high", "critical", "t", 95.0, "hot", now
        )
    )
    await db.close()
    assert row is not None
    sender = ChannelSender(public_url=None)
    dispatcher = Dispatcher(
        store, sender, clock_ms=lambda: now, public_url="https://hub.example", retry_max_s=1
    )
    assert await dispatcher.run_once() == 1
    await sender.close()
    assert len(bodies) == 1
    got = await client.get(f"{API}/alerts/{row.id}/notifications", headers=bearer(tokens.viewer))
    assert got.status_code == 200
    (attempt,) = got.json()["items"]
    assert attempt["channel"] == "ops"
    assert attempt["outcome"] == "delivered"
    assert attempt["event"] == "firing"
    assert attempt["idempotency_key"] == bodies[0]["notifications"][0]["idempotency_key"]
    assert (await client.get(f"{API}/alerts/{row.id}/notifications")).status_code == 401
