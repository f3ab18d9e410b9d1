"""The REST and WebSocket API of a real `iot-hub web` process, on this session's PostgreSQL and
the local Redis: every endpoint, authentication and roles, bad parameters, markup in names, and
the live WebSocket including a client that stops reading.

Data is arranged with the hub's own adapters (`Database`, `LiveStore`): what the worker writes is
what the API reads. Redis is shared with whatever else runs on the machine, so every device id
here is unique to its test and Redis keys are removed afterwards; WebSocket clients subscribe to
their own devices only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from hub.rules.model import AlertTransition
from hub.storage.alert_events import alert_event, encode_event
from hub.storage.live import LiveStore
from hub.storage.model import AlertRow, Severity
from hub.storage.postgres import Database
from hub.storage.redis_keys import GATEWAYS_KEY, LAST_SEEN_KEY, latest_key
from hub.storage.redis_values import GatewayHealth
from iot_common.prometheus import parse as parse_metrics
from protocol import EdgeMetrics, NormalisedReading
from tests.support.readings import make_reading
from tests.support.waiting import async_wait_until, wait_until
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration

# Small, so that the slow-client test fills a queue with a few messages; the other clients
# here read as fast as they are sent to.
CLIENT_QUEUE = 20


@pytest.fixture(scope="module")
def tokens(postgres: str) -> Tokens:
    return asyncio.run(create_tokens(postgres))


@pytest.fixture(scope="module")
def web(
    postgres: str, redis_url: str, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    proc = WebProcess(
        tmp_path_factory.mktemp("web"),
        {
            "HUB_DATABASE_URL": postgres,
            "HUB_REDIS_URL": redis_url,
            "HUB_WEB_CLIENT_QUEUE": str(CLIENT_QUEUE),
        },
    ).start()
    yield proc
    code = proc.stop()
    log = proc.log()
    leaks = [line for line in log.splitlines() if any(t in line for t in tokens.all())]
    assert not leaks, f"a token was written to the web process's log: {leaks[0][:300]}"
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), log[-3000:]
    assert "event=web_stopped" in log


@pytest.fixture
async def client(web: WebProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=15) as c:
        yield c


@pytest.fixture
async def live(redis_url: str) -> AsyncIterator[LiveStore]:
    store = LiveStore.from_url(redis_url)
    yield store
    await store.aclose()


@pytest.fixture
async def tag(redis: Redis) -> AsyncIterator[str]:
    """A prefix for this test's device ids; their Redis keys are removed afterwards."""
    prefix = f"c{uuid.uuid4().hex[:8]}"
    yield prefix
    keys = [k async for k in redis.scan_iter(match=f"{latest_key(prefix)}*")]
    if keys:
        await redis.delete(*keys)
    members = await redis.zrangebyscore(LAST_SEEN_KEY, "-inf", "+inf")
    mine = [m for m in members if isinstance(m, str) and m.startswith(prefix)]
    if mine:
        await redis.zrem(LAST_SEEN_KEY, *mine)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def now_ms() -> int:
    return int(time.time() * 1000)


reading = functools.partial(make_reading, type="cnc_spindle", gateway_id="gw-c")


async def store_readings(
    database: Database, live: LiveStore, readings: list[NormalisedReading]
) -> None:
    """What the worker's ingest does with a batch: PostgreSQL, then Redis latest values."""
    await database.ensure_partitions(now_ms(), ahead_days=1)
    await database.write_readings(readings)
    assert await live.update_latest(readings)


def transition(
    device_id: str | None,
    *,
    rule: str = "cnc_spindle.spindle_temp_c.threshold",
    severity: Severity = "warning",
    message: str = "spindle_temp_c 81.0 above 80",
    gateway_id: str | None = "gw-c",
) -> AlertTransition:
    return AlertTransition(
        kind="raised",
        device_id=device_id,
        gateway_id=gateway_id,
        rule=rule,
        severity=severity,
        metric="spindle_temp_c" if device_id else None,
        value=81.0 if device_id else None,
        message=message,
        ts=now_ms(),
    )


async def raise_alert(database: Database, t: AlertTransition) -> AlertRow:
    row = await database.apply_alert(t)
    assert row is not None
    return row


def assert_error(resp: httpx.Response, status: int, error: str, *mentions: str) -> str:
    """The response is our JSON error shape with ``status``; returns its message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == error
    detail: str = body["detail"]
    for text in mentions:
        assert text in detail, f"{text!r} not in {detail!r}"
    return detail


# -- operations endpoints ------------------------------------------------------------------------


async def test_health_readiness_and_metrics_need_no_token(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"postgres": True, "redis": True, "live": True},
    }

    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse_metrics(metrics.text)
    # The requests just made are counted by route template and status.
    assert samples['hub_web_http_requests_total{route="/healthz",method="GET",status="200"}'] >= 1
    assert samples['hub_web_http_requests_total{route="/readyz",method="GET",status="200"}'] >= 1
    for name in (
        "hub_web_ws_clients",
        "hub_web_live_subscribers",
        "hub_web_live_delivered_total",
        "hub_web_live_dropped_total",
        'hub_web_logins_total{outcome="ok"}',
        'hub_web_logins_total{outcome="failed"}',
        "process_cpu_seconds_total",
    ):
        assert name in samples, name
    # Every family is introduced by its HELP and TYPE lines.
    families = {line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE")}
    assert {re.split(r"[{ ]", key)[0] for key in samples} <= families


async def test_openapi_documents_every_route_its_errors_and_the_bearer_scheme(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    expected = {
        f"{API}/devices": ("get", {"200", "401", "422", "503"}),
        f"{API}/devices/{{device_id}}": ("get", {"200", "401", "404", "422", "503"}),
        f"{API}/devices/{{device_id}}/readings": ("get", {"200", "401", "404", "422", "503"}),
        f"{API}/gateways": ("get", {"200", "401", "503"}),
        f"{API}/alerts": ("get", {"200", "401", "422", "503"}),
        f"{API}/alerts/{{alert_id}}/ack": ("post", {"200", "401", "403", "404", "422", "503"}),
        f"{API}/alerts/{{alert_id}}/clear": ("post", {"200", "401", "403", "404", "422", "503"}),
        f"{API}/audit": ("get", {"200", "401", "403", "422", "503"}),
    }
    error_ref = "#/components/schemas/ErrorBody"
    for path, (method, codes) in expected.items():
        op = paths[path][method]
        assert set(op["responses"]) == codes, path
        assert op["security"] == [{"HTTPBearer": []}], path
        for code in codes - {"200"}:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, (path, code)
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for public in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in paths[public]["get"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")


async def test_unknown_api_paths_and_methods_answer_in_json(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    missing = await client.get(f"{API}/nothing/here", headers=bearer(tokens.viewer))
    assert_error(missing, 404, "not_found", f"GET {API}/nothing/here")

    wrong = await client.delete(f"{API}/devices", headers=bearer(tokens.viewer))
    assert_error(wrong, 405, "method_not_allowed", "allowed: GET")
    assert wrong.headers["allow"] == "GET"
    get_on_post = await client.get(f"{API}/alerts/1/ack", headers=bearer(tokens.operator))
    assert_error(get_on_post, 405, "method_not_allowed")
    assert get_on_post.headers["allow"] == "POST"


# -- authentication and roles --------------------------------------------------------------------

PROTECTED_GETS = [
    f"{API}/devices",
    f"{API}/devices/anything",
    f"{API}/devices/anything/readings?metric=x",
    f"{API}/gateways",
    f"{API}/alerts",
]


async def test_a_missing_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    for path in PROTECTED_GETS:
        resp = await client.get(path)
        assert_error(resp, 401, "unauthorized", "missing bearer token")
        assert resp.headers["www-authenticate"] == "Bearer"
    for action in ("ack", "clear"):
        resp = await client.post(f"{API}/alerts/1/{action}")
        assert_error(resp, 401, "unauthorized", "missing bearer token")
    # Another scheme is no bearer token either.
    resp = await client.get(f"{API}/devices", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_error(resp, 401, "unauthorized", "missing bearer token")


async def test_wrong_and_revoked_tokens_are_401(client: httpx.AsyncClient, tokens: Tokens) -> None:
    wrong = [
        "iot_" + secrets.token_urlsafe(32),  # well-formed, never issued
        "not-even-the-format",
        tokens.viewer + "x",
        tokens.revoked,
    ]
    for token in wrong:
        for path in PROTECTED_GETS:
            resp = await client.get(path, headers=bearer(token))
            assert_error(resp, 401, "unauthorized", "invalid or revoked token")
            assert resp.headers["www-authenticate"].startswith("Bearer")
        resp = await client.post(f"{API}/alerts/1/ack", headers=bearer(token))
        assert_error(resp, 401, "unauthorized")
    # ... while the same request with a valid token gets through.
    ok = await client.get(f"{API}/devices", headers=bearer(tokens.viewer))
    assert ok.status_code == 200


async def test_a_viewer_may_read_alerts_but_not_acknowledge_or_clear_them(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, tag: str
) -> None:
    row = await raise_alert(database, transition(f"{tag}-1"))
    for action in ("ack", "clear"):
        resp = await client.post(
            f"{API}/alerts/{row.id}/{action}",
            headers=bearer(tokens.viewer),
            json={"comment": "looked at it"},
        )
        assert_error(resp, 403, "forbidden", "'viewer'", "operator or admin")
    after = await database.get_alert(row.id)
    assert after == row  # nothing changed
    listed = await client.get(f"{API}/alerts", headers=bearer(tokens.viewer))
    assert [a["id"] for a in listed.json()["items"]] == [row.id]


# -- devices, readings, gateways -----------------------------------------------------------------


async def test_devices_are_listed_filtered_and_paginated(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, live: LiveStore, tag: str
) -> None:
    t = now_ms() - 10_000
    await store_readings(
        database,
        live,
        [
            reading(f"{tag}-a", t, {"spindle_temp_c": 61.5, "running": True}, site="s1"),
            reading(f"{tag}-a", t + 1000, {"spindle_temp_c": 62.0}, site="s1"),
            reading(f"{tag}-B", t, {"flow_l_min": 12.0}, site="s1", type="pump"),
            reading(f"{tag}-c", t, {"flow_l_min": 3.0}, site="s2", type="pump"),
        ],
    )
    await raise_alert(database, transition(f"{tag}-a", severity="critical"))
    headers = bearer(tokens.viewer)

    resp = await client.get(f"{API}/devices", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    page = resp.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 100, 0)
    assert [d["device_id"] for d in page["items"]] == [f"{tag}-B", f"{tag}-a", f"{tag}-c"]
    a = page["items"][1]
    assert a["site"] == "s1"
    assert a["type"] == "cnc_spindle"
    assert a["gateway_id"] == "gw-c"
    assert a["metrics"] == ["running", "spindle_temp_c"]
    assert a["latest"] == {"spindle_temp_c": 62.0, "running": True}
    assert a["latest_ts"] == t + 1000
    assert a["last_seen"] == t + 1000
    assert (a["active_alerts"], a["worst_severity"]) == (1, "critical")
    assert "Link" not in resp.headers

    async def ids(**params: Any) -> list[str]:
        r = await client.get(f"{API}/devices", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return [d["device_id"] for d in r.json()["items"]]

    assert await ids(site="s1") == [f"{tag}-B", f"{tag}-a"]
    assert await ids(type="pump") == [f"{tag}-B", f"{tag}-c"]
    assert await ids(search=f"{tag}-b".upper()) == [f"{tag}-B"]  # any case
    assert await ids(site="s2", type="pump") == [f"{tag}-c"]
    assert await ids(site="nowhere") == []

    first = await client.get(f"{API}/devices", headers=headers, params={"limit": 2})
    assert [d["device_id"] for d in first.json()["items"]] == [f"{tag}-B", f"{tag}-a"]
    assert (first.json()["total"], first.json()["limit"]) == (3, 2)
    link = first.headers["Link"]
    assert link.endswith('; rel="next"')
    following = await client.get(link[1 : link.index(">")], headers=headers)
    assert following.json()["offset"] == 2
    assert [d["device_id"] for d in following.json()["items"]] == [f"{tag}-c"]
    assert following.json()["total"] == 3
    assert "Link" not in following.headers
    beyond = await client.get(f"{API}/devices", headers=headers, params={"offset": 50})
    assert (beyond.json()["items"], beyond.json()["total"]) == ([], 3)


async def test_one_device_and_404_for_an_unknown_one(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, live: LiveStore, tag: str
) -> None:
    t = now_ms()
    await store_readings(database, live, [reading(f"{tag}-1", t, {"vibration_mm_s": 2.5})])
    resp = await client.get(f"{API}/devices/{tag}-1", headers=bearer(tokens.viewer))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["device_id"], body["latest"], body["active_alerts"]) == (
        f"{tag}-1",
        {"vibration_mm_s": 2.5},
        0,
    )
    assert body["worst_severity"] is None

    missing = await client.get(f"{API}/devices/{tag}-nope", headers=bearer(tokens.viewer))
    assert_error(missing, 404, "not_found", f"{tag}-nope")
    nul = await client.get(f"{API}/devices/{tag}%00x", headers=bearer(tokens.viewer))
    assert_error(nul, 404, "not_found")


async def test_readings_of_a_metric_over_a_range(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, live: LiveStore, tag: str
) -> None:
    device = f"{tag}-1"
    t0 = now_ms() - 20 * 60_000  # within the default range, the last hour
    values = [50.0 + i for i in range(60)]
    await store_readings(
        database,
        live,
        [
            reading(device, t0 + i * 1000, {"spindle_temp_c": v, "running": i % 2 == 0}, seq=i)
            for i, v in enumerate(values)
        ],
    )
    url = f"{API}/devices/{device}/readings"
    headers = bearer(tokens.viewer)

    resp = await client.get(url, headers=headers, params={"metric": "spindle_temp_c"})
    assert resp.status_code == 200, resp.text
    series = resp.json()
    assert (series["device_id"], series["metric"], series["source"]) == (
        device,
        "spindle_temp_c",
        "raw",
    )
    assert series["ts"] == [t0 + i * 1000 for i in range(60)]
    assert series["values"] == values
    assert series["downsampled"] is False
    assert series["end"] - series["start"] == 3_600_000
    assert resp.headers["X-Readings-Source"] == "raw"

    # A year reads the daily rollups (built by the worker; here by the rebuild), and says so;
    # today, still open, comes from the finer tiers.
    await database.rebuild_rollups(t0, t0 + 3_600_000)
    for tier in ("1h", "1d"):
        await database.rebuild_tier(tier, t0, t0 + 3_600_000)
    year = await client.get(
        url,
        headers=headers,
        params={"metric": "spindle_temp_c", "start": t0 + 3_600_000 - 365 * 86_400_000,
                "end": t0 + 3_600_000},
    )  # fmt: skip
    assert (year.json()["source"], year.headers["X-Readings-Source"]) == ("1d", "1d")
    assert (min(year.json()["values"]), max(year.json()["values"])) == (50.0, 109.0)

    ranged = await client.get(
        url,
        headers=headers,
        params={"metric": "spindle_temp_c", "start": t0 + 10_000, "end": t0 + 20_000},
    )
    assert ranged.json()["values"] == values[10:20]  # [start, end)

    booleans = await client.get(url, headers=headers, params={"metric": "running"})
    assert booleans.json()["values"][:4] == [1.0, 0.0, 1.0, 0.0]

    few = await client.get(
        url, headers=headers, params={"metric": "spindle_temp_c", "max_points": 4}
    )
    assert few.json()["downsampled"] is True
    assert 2 <= len(few.json()["values"]) < 60
    assert max(few.json()["values"]) == max(values)  # the extremes survive downsampling
    assert min(few.json()["values"]) == min(values)

    unknown = await client.get(
        f"{API}/devices/{tag}-nope/readings", headers=headers, params={"metric": "x"}
    )
    assert_error(unknown, 404, "not_found", f"{tag}-nope")


async def test_gateways_as_the_status_agent_stores_them(
    client: httpx.AsyncClient, tokens: Tokens, live: LiveStore, redis: Redis
) -> None:
    gateway = f"gw-c-{uuid.uuid4().hex[:8]}"
    received = now_ms()
    metrics = EdgeMetrics(
        gateway_id=gateway,
        site="site-9",
        ts=received - 40,
        uptime_s=123.0,
        buffer_depth=7,
        buffer_bytes=2048,
        buffer_max_bytes=1 << 20,
        buffer_oldest_age_s=1.5,
        received_total=100,
        forwarded_total=93,
        dropped_total=0,
        dead_lettered_total=1,
        received_rate=10.0,
        forwarded_rate=9.5,
        kafka_connected=True,
    )
    assert await live.set_gateway_state(GatewayHealth.received(metrics, received))
    try:
        resp = await client.get(f"{API}/gateways", headers=bearer(tokens.viewer))
        assert resp.status_code == 200
        mine = [g for g in resp.json() if g["gateway_id"] == gateway]
        assert mine == [
            {
                "gateway_id": gateway,
                "site": "site-9",
                "state": "online",
                "received_ts": received,
                "buffer_depth": 7,
                "buffer_bytes": 2048,
                "buffer_max_bytes": 1 << 20,
                "buffer_oldest_age_s": 1.5,
                "buffer_runway_s": None,
                "forwarded_rate": 9.5,
                "received_rate": 10.0,
                "dropped_total": 0,
                "kafka_connected": True,
                "connectors": None,  # a gateway without connectors
            }
        ]
    finally:
        await redis.hdel(GATEWAYS_KEY, gateway)


# -- alerts --------------------------------------------------------------------------------------


async def test_alerts_are_listed_by_status_severity_and_device(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, tag: str
) -> None:
    warm = await raise_alert(database, transition(f"{tag}-1"))
    gone = await raise_alert(
        database,
        transition(
            None,
            gateway_id=f"{tag}-gw",
            rule="gateway_offline",
            severity="critical",
            message="gateway silent",
        ),
    )
    hot = await raise_alert(
        database, transition(f"{tag}-2", rule="cnc_spindle.vibration", severity="critical")
    )
    await database.acknowledge_alert(hot.id, "someone", None)
    await database.clear_alert(gone.id, "someone")
    headers = bearer(tokens.viewer)

    async def ids(**params: Any) -> tuple[list[int], int]:
        r = await client.get(f"{API}/alerts", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]], r.json()["total"]

    newest_first = sorted([warm, gone, hot], key=lambda a: (a.raised_at, a.id), reverse=True)
    active = [a.id for a in newest_first if a.id != gone.id]
    assert await ids() == (active, 2)  # default: active
    assert await ids(status="all") == ([a.id for a in newest_first], 3)
    assert await ids(status="cleared") == ([gone.id], 1)
    assert await ids(status="unacknowledged") == (
        [a.id for a in newest_first if a.id != hot.id],
        2,
    )
    assert await ids(severity="critical") == ([hot.id], 1)
    assert await ids(status="all", severity="critical") == (
        [a.id for a in newest_first if a.id != warm.id],
        2,
    )
    assert await ids(device_id=f"{tag}-1") == ([warm.id], 1)

    first = await client.get(f"{API}/alerts", headers=headers, params={"status": "all", "limit": 2})
    assert first.json()["total"] == 3
    assert len(first.json()["items"]) == 2
    assert "offset=2" in first.headers["Link"]
    body = next(a for a in first.json()["items"] if a["id"] == hot.id)
    stored = await database.get_alert(hot.id)
    assert stored is not None
    assert body == stored.to_json()


async def test_an_operator_acknowledges_with_a_comment_and_clears(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, tag: str
) -> None:
    row = await raise_alert(database, transition(f"{tag}-1"))
    before = now_ms()
    resp = await client.post(
        f"{API}/alerts/{row.id}/ack",
        headers=bearer(tokens.operator),
        json={"comment": "bearing replaced at 14:00"},
    )
    assert resp.status_code == 200, resp.text
    acked = resp.json()
    assert acked["id"] == row.id
    assert acked["acknowledged"] is True
    assert acked["ack_by"] == f"token:{tokens.names['operator']}"
    assert acked["ack_comment"] == "bearing replaced at 14:00"
    assert before - 1000 <= acked["ack_at"] <= now_ms() + 1000
    assert acked["state"] == "active"  # acknowledged is not cleared
    stored = await database.get_alert(row.id)
    assert stored is not None
    assert stored.to_json() == acked
    listed = await client.get(
        f"{API}/alerts", headers=bearer(tokens.viewer), params={"device_id": f"{tag}-1"}
    )
    assert listed.json()["items"] == [acked]

    # An admin may too, and a comment is optional (no body at all).
    other = await raise_alert(database, transition(f"{tag}-2"))
    bare = await client.post(f"{API}/alerts/{other.id}/ack", headers=bearer(tokens.admin))
    assert bare.status_code == 200, bare.text
    assert (bare.json()["ack_by"], bare.json()["ack_comment"]) == (
        f"token:{tokens.names['admin']}",
        None,
    )

    cleared = await client.post(f"{API}/alerts/{row.id}/clear", headers=bearer(tokens.operator))
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["state"] == "cleared"
    assert cleared.json()["cleared_by"] == f"token:{tokens.names['operator']}"
    assert cleared.json()["cleared_at"] is not None
    again = await client.post(f"{API}/alerts/{row.id}/clear", headers=bearer(tokens.operator))
    assert again.json() == cleared.json()  # clearing twice changes nothing

    for action in ("ack", "clear"):
        missing = await client.post(
            f"{API}/alerts/987654321/{action}", headers=bearer(tokens.operator)
        )
        assert_error(missing, 404, "not_found", "987654321")

    too_long = await client.post(
        f"{API}/alerts/{row.id}/ack", headers=bearer(tokens.operator), json={"comment": "x" * 5000}
    )
    assert_error(too_long, 422, "invalid_request", "comment")
    not_json = await client.post(
        f"{API}/alerts/{row.id}/ack",
        headers={**bearer(tokens.operator), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert_error(not_json, 422, "invalid_request", "JSON")
    not_utf8 = await client.post(
        f"{API}/alerts/{row.id}/ack",
        headers={**bearer(tokens.operator), "Content-Type": "application/json"},
        content=b"\xff\xfe{",
    )
    assert_error(not_utf8, 422, "invalid_request", "request body")


# -- bad parameters ------------------------------------------------------------------------------

BAD_PARAMETERS = [
    ("devices", {"limit": "0"}, ["'limit'", "greater than or equal to 1"]),
    ("devices", {"limit": "100000"}, ["'limit'", "less than or equal to 1000"]),
    ("devices", {"offset": "-1"}, ["'offset'"]),
    ("devices", {"limit": "ten"}, ["'limit'", "integer"]),
    ("devices", {"state": "asleep"}, ["'state'", "'online'"]),
    ("devices", {"search": "a\x00b"}, ["'search'", "NUL"]),
    ("alerts", {"status": "bogus"}, ["'status'", "'unacknowledged'"]),
    ("alerts", {"severity": "info"}, ["'severity'", "'critical'"]),
    ("alerts", {"limit": "0"}, ["'limit'"]),
    ("readings", {}, ["'metric'", "required"]),
    ("readings", {"metric": "spindle_temp_c", "start": "abc"}, ["'start'", "integer"]),
    (
        "readings",
        {"metric": "spindle_temp_c", "start": "2000", "end": "1000"},
        ["'start'", "'end'"],
    ),
    ("readings", {"metric": "spindle_temp_c", "start": "1000", "end": "1000"}, ["'start'"]),
    ("readings", {"metric": "spindle_temp_c", "max_points": "1"}, ["'max_points'"]),
    ("readings", {"metric": "spindle_temp_c", "end": str(10**20)}, ["'end'"]),
]


@pytest.mark.parametrize(
    ("endpoint", "params", "mentions"),
    BAD_PARAMETERS,
    ids=[f"{e}-{'&'.join(p) or 'none'}-{i}" for i, (e, p, _) in enumerate(BAD_PARAMETERS)],
)
async def test_bad_parameters_are_422_with_a_message_naming_them(
    client: httpx.AsyncClient,
    tokens: Tokens,
    database: Database,
    live: LiveStore,
    tag: str,
    endpoint: str,
    params: dict[str, str],
    mentions: list[str],
) -> None:
    device = f"{tag}-1"
    await store_readings(database, live, [reading(device, now_ms(), {"spindle_temp_c": 60.0})])
    path = {
        "devices": f"{API}/devices",
        "alerts": f"{API}/alerts",
        "readings": f"{API}/devices/{device}/readings",
    }[endpoint]
    resp = await client.get(path, headers=bearer(tokens.viewer), params=params)
    assert_error(resp, 422, "invalid_request", *mentions)


async def test_an_unknown_metric_is_404_naming_it_and_the_known_ones(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, live: LiveStore, tag: str
) -> None:
    device = f"{tag}-1"
    await store_readings(
        database, live, [reading(device, now_ms(), {"spindle_temp_c": 60.0, "running": True})]
    )
    resp = await client.get(
        f"{API}/devices/{device}/readings",
        headers=bearer(tokens.viewer),
        params={"metric": "no_such_metric"},
    )
    assert_error(resp, 404, "not_found", "'metric'", "'no_such_metric'", "running, spindle_temp_c")


async def test_a_bad_path_parameter_is_422(client: httpx.AsyncClient, tokens: Tokens) -> None:
    for alert_id in ("abc", "0", "-3", str(2**64)):
        resp = await client.post(f"{API}/alerts/{alert_id}/ack", headers=bearer(tokens.operator))
        assert_error(resp, 422, "invalid_request", "'alert_id'")


# -- markup is data ------------------------------------------------------------------------------


async def test_markup_in_names_comes_back_as_json_text(
    client: httpx.AsyncClient, tokens: Tokens, pg: asyncpg.Connection, database: Database
) -> None:
    """The pipeline only admits plain identifiers, but the API must not depend on that: ids
    and messages with markup in them are returned as JSON strings, never as HTML."""
    script = "<script>alert(1)</script>"
    img = "<img src=x onerror=alert(1)>"
    for device_id in (script, img):
        await pg.execute(
            "INSERT INTO devices (device_id, site, type, gateway_id, first_seen, last_seen, "
            "metrics) VALUES ($1, $2, $3, 'gw-c', now(), now(), ARRAY['t'])",
            device_id,
            f"site {device_id}",
            "t<b>",
        )
    row = await raise_alert(database, transition(img, message=f"too hot: {script}"))
    headers = bearer(tokens.viewer)

    listed = await client.get(f"{API}/devices", headers=headers, params={"search": "<script>"})
    detail = await client.get(f"{API}/devices/{quote(img, safe='')}", headers=headers)
    alerts = await client.get(f"{API}/alerts", headers=headers)
    missing = await client.get(f"{API}/devices/{quote('<b>nope', safe='')}", headers=headers)
    for resp in (listed, detail, alerts, missing):
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["x-content-type-options"] == "nosniff"
        json.loads(resp.text)  # the whole body is one JSON document
    assert [d["device_id"] for d in listed.json()["items"]] == [script]
    assert listed.json()["items"][0]["site"] == f"site {script}"
    assert (detail.json()["device_id"], detail.json()["type"]) == (img, "t<b>")
    assert alerts.json()["items"][0]["message"] == f"too hot: {script}"
    assert alerts.json()["items"][0]["id"] == row.id
    assert_error(missing, 404, "not_found", "<b>nope")


# -- the live WebSocket ----------------------------------------------------------------------------


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    body: dict[str, Any] = json.loads(msg.data)
    return body


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse,
    wanted: Any,
    what: str,
    timeout: float = 15,
) -> dict[str, Any]:
    """The first message for which ``wanted(message)`` holds (other alerts, from whatever else
    shares this Redis, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        try:
            message = await next_json(ws, remaining)
        except TimeoutError as exc:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}") from exc
        if wanted(message):
            return message


async def test_live_readings_and_alert_events_reach_a_websocket_client(
    web: WebProcess,
    tokens: Tokens,
    client: httpx.AsyncClient,
    live: LiveStore,
    database: Database,
    tag: str,
) -> None:
    mine, other = f"{tag}-1", f"{tag}-2"
    t = now_ms()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            web.ws_url, params={"token": tokens.viewer, "devices": f"{mine}, {tag}-3"}
        ) as ws,
    ):
        # Exactly what the worker publishes, through the worker's own adapter.
        assert await live.publish_readings(
            [
                reading(mine, t, {"spindle_temp_c": 70.5, "running": True}, seq=1),
                reading(other, t, {"spindle_temp_c": 10.0}, seq=1),
                reading(mine, t + 100, {"spindle_temp_c": 70.7}, seq=2),
            ]
        )
        message = await next_json(ws)
        assert message == {
            "type": "readings",
            "readings": [
                {
                    "site": "site-1",
                    "device_id": mine,
                    "type": "cnc_spindle",
                    "ts": t,
                    "seq": 1,
                    "metrics": {"spindle_temp_c": 70.5, "running": True},
                },
                {
                    "site": "site-1",
                    "device_id": mine,
                    "type": "cnc_spindle",
                    "ts": t + 100,
                    "seq": 2,
                    "metrics": {"spindle_temp_c": 70.7},
                },
            ],
        }

        # An alert as the worker publishes it ...
        row = await raise_alert(database, transition(mine))
        assert await live.publish_alert(encode_event(alert_event("raised", row)))
        raised = await receive_until(
            ws, lambda m: m.get("alert", {}).get("id") == row.id, "the raised alert"
        )
        assert raised == {"type": "alert", "alert": {"v": 1, "event": "raised", **row.to_json()}}

        # ... and an acknowledgement through the API, which every live client hears of.
        ack = await client.post(f"{API}/alerts/{row.id}/ack", headers=bearer(tokens.operator))
        assert ack.status_code == 200
        acked = await receive_until(
            ws,
            lambda m: (
                m.get("alert", {}).get("id") == row.id and m["alert"].get("event") == "acknowledged"
            ),
            "the acknowledgement",
        )
        assert acked["alert"]["ack_by"] == f"token:{tokens.names['operator']}"

    await asyncio.to_thread(
        wait_until, lambda: "event=ws_disconnected" in web.log(), 10, "the disconnect logged"
    )
    line = [x for x in web.log().splitlines() if "event=ws_connected" in x][-1]
    assert "logger=hub.web.api" in line
    assert f"principal=token:{tokens.names['viewer']}" in line


async def test_live_header_token_and_alerts_off(
    web: WebProcess, tokens: Tokens, live: LiveStore, database: Database, tag: str
) -> None:
    device = f"{tag}-1"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            web.ws_url,
            params={"devices": device, "alerts": "false"},
            headers=bearer(tokens.viewer),
        ) as ws,
    ):
        row = await raise_alert(database, transition(device))
        # Redis delivers one connection's messages in the order they were published: had the
        # alert been forwarded, it would arrive before the reading.
        assert await live.publish_alert(encode_event(alert_event("raised", row)))
        assert await live.publish_readings([reading(device, now_ms(), {"x": 1.0})])
        message = await next_json(ws)
        assert message["type"] == "readings"
        assert [r["device_id"] for r in message["readings"]] == [device]


@pytest.mark.parametrize(
    ("how", "params", "reason"),
    [
        ("missing", {}, "missing token"),
        ("wrong", {"token": "iot_" + "A" * 43}, "invalid or revoked token"),
        ("revoked", {"token": "<revoked>"}, "invalid or revoked token"),
        ("bad parameter", {"token": "<viewer>", "alerts": "maybe"}, "alerts"),
    ],
)
async def test_live_refuses_a_bad_token_or_parameter_with_1008(
    web: WebProcess, tokens: Tokens, how: str, params: dict[str, str], reason: str
) -> None:
    params = {
        k: {"<revoked>": tokens.revoked, "<viewer>": tokens.viewer}.get(v, v)
        for k, v in params.items()
    }
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(web.ws_url, params=params) as ws,
    ):
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
        assert msg.data == 1008
        assert reason in str(msg.extra)
        assert ws.close_code == 1008


async def test_a_client_that_stops_reading_is_dropped_while_another_keeps_receiving(
    web: WebProcess, tokens: Tokens, client: httpx.AsyncClient, live: LiveStore, tag: str
) -> None:
    device = f"{tag}-1"
    params = {"token": tokens.viewer, "devices": device, "alerts": "false"}
    fast_seen: list[int] = []  # seq of the first reading of each message the fast client got
    fast_other: list[object] = []  # anything else it got (there should be nothing)

    async def fast_received(n: int) -> bool:
        return n in fast_seen

    async def wait_fast(n: int) -> None:
        try:
            await async_wait_until(
                functools.partial(fast_received, n),
                15,
                f"the fast client to receive message {n}",
                interval=0.002,
            )
        except TimeoutError as exc:
            tail = "\n".join(web.log().splitlines()[-15:])
            raise AssertionError(
                f"{exc}; it got {fast_seen[-3:]} and {fast_other}; web log:\n{tail}"
            ) from exc

    async def dropped_total() -> float:
        samples = parse_metrics((await client.get("/metrics")).text)
        return samples["hub_web_live_dropped_total"]

    def batch(n: int) -> list[NormalisedReading]:
        # One Redis message of 500 readings (~60 kB as JSON): a slow client's socket buffers
        # fill after some dozens of these.
        t = now_ms()
        return [
            reading(device, t + i, {"a": float(n), "b": 1.5, "c": 2.5, "d": 3.5}, seq=n)
            for i in range(500)
        ]

    dropped_before = await dropped_total()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(web.ws_url, params=params) as slow,
        session.ws_connect(web.ws_url, params=params) as fast,
    ):

        async def read_fast() -> None:
            async for msg in fast:
                body = json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else None
                if body and body["type"] == "readings":
                    fast_seen.append(body["readings"][0]["seq"])
                else:
                    fast_other.append(body or (msg.type, msg.data, msg.extra))
            fast_other.append("closed")

        reader = asyncio.create_task(read_fast())
        try:
            n = 0
            # Lockstep with the fast client, so that only the slow one can fall behind.
            while await dropped_total() == dropped_before:
                assert n < 2000, "the slow client was never dropped"
                for _ in range(10):
                    n += 1
                    assert await live.publish_readings(batch(n))
                    await wait_fast(n)
            # The slow client reads again: what was queued for it before the drop, then the
            # reason, then the close code (1013: try again later).
            texts: list[dict[str, Any]] = []
            while True:
                msg = await slow.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                texts.append(json.loads(msg.data))
            assert msg.type == aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
            assert (msg.data, msg.extra) == (1013, "slow client")
            assert texts[-1] == {"type": "dropped", "reason": "slow client"}
            assert len(texts) - 1 < n  # it missed messages, the fast one did not

            # The fast client is still subscribed and receives what comes next.
            n += 1
            assert await live.publish_readings(batch(n))
            await wait_fast(n)
            assert fast_seen == list(range(1, n + 1))
            assert not fast.closed
        finally:
            reader.cancel()
    samples = parse_metrics((await client.get("/metrics")).text)
    assert samples['hub_web_ws_ended_total{how="dropped"}'] >= 1
    await asyncio.to_thread(
        wait_until, lambda: "event=ws_dropped" in web.log(), 10, "the drop logged"
    )


# -- security: headers, token expiry, the audit log ---------------------------------------------


async def test_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    answers = [
        await client.get("/healthz"),
        await client.get(f"{API}/devices", headers=bearer(tokens.viewer)),
        await client.get(f"{API}/devices"),  # 401
        await client.get("/login"),  # a NiceGUI page
        await client.get("/"),  # a redirect to the login page
        await client.get("/no/such/page"),
    ]
    for resp in answers:
        csp = resp.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, resp.url
        assert "default-src 'self'" in csp
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "no-referrer"
    docs = await client.get("/docs")
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in answers[3].headers["content-security-policy"]


async def test_an_expired_token_is_401_saying_when_it_expired(
    client: httpx.AsyncClient, postgres: str
) -> None:
    from hub.storage.accounts import PostgresAccounts
    from tests.support.web import SETUP_ACTOR

    name = f"exp-{uuid.uuid4().hex[:6]}"
    pool = await asyncpg.create_pool(postgres, min_size=1, max_size=1)
    try:
        token = await PostgresAccounts(pool).create_token(
            name, "viewer", actor=SETUP_ACTOR, expires_in_s=3600
        )
        ok = await client.get(f"{API}/gateways", headers=bearer(token))
        assert ok.status_code == 200, ok.text
        # Expired a while ago (the test does not wait for an hour to pass).
        await pool.execute(
            "UPDATE api_tokens SET expires_at = '2026-01-02T03:04:05Z' WHERE name = $1", name
        )
    finally:
        await pool.close()
    resp = await client.get(f"{API}/gateways", headers=bearer(token))
    assert_error(resp, 401, "unauthorized", "token expired at 2026-01-02T03:04:05Z")
    assert "expired" in resp.headers["www-authenticate"]


async def test_the_audit_log_is_for_admins_only(client: httpx.AsyncClient, tokens: Tokens) -> None:
    assert_error(await client.get(f"{API}/audit"), 401, "unauthorized")
    for token in (tokens.viewer, tokens.operator):
        resp = await client.get(f"{API}/audit", headers=bearer(token))
        assert_error(resp, 403, "forbidden", "admin")
    resp = await client.get(f"{API}/audit", headers=bearer(tokens.admin))
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"items", "total", "limit", "offset"}


async def test_acknowledging_and_clearing_through_the_api_are_audited(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, tag: str
) -> None:
    row = await raise_alert(database, transition(f"{tag}-a"))
    since = now_ms() - 1000
    acked = await client.post(
        f"{API}/alerts/{row.id}/ack", headers=bearer(tokens.operator), json={"comment": "seen"}
    )
    assert acked.status_code == 200, acked.text
    cleared = await client.post(f"{API}/alerts/{row.id}/clear", headers=bearer(tokens.operator))
    assert cleared.status_code == 200, cleared.text
    actor = f"token:{tokens.names['operator']}"
    resp = await client.get(
        f"{API}/audit",
        headers=bearer(tokens.admin),
        params={"actor": actor, "action": "alert.", "since": since},
    )
    assert resp.status_code == 200, resp.text
    entries = [e for e in resp.json()["items"] if e["target"] == str(row.id)]
    assert [(e["action"], e["outcome"], e["client"]) for e in entries] == [
        ("alert.clear", "success", "127.0.0.1"),
        ("alert.acknowledge", "success", "127.0.0.1"),
    ]
    assert entries[1]["details"]["comment"] == "seen"
    assert entries[1]["details"]["device_id"] == f"{tag}-a"
    assert entries[0]["details"]["was"] == "active"


async def test_the_audit_listing_pages_and_refuses_bad_filters(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, tag: str
) -> None:
    for i in range(3):
        row = await raise_alert(database, transition(f"{tag}-p{i}"))
        resp = await client.post(f"{API}/alerts/{row.id}/ack", headers=bearer(tokens.admin))
        assert resp.status_code == 200, resp.text
    params = {"actor": f"token:{tokens.names['admin']}", "action": "alert.acknowledge"}
    first = await client.get(
        f"{API}/audit", headers=bearer(tokens.admin), params={**params, "limit": 2}
    )
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 2
    assert first.json()["total"] >= 3
    assert 'rel="next"' in first.headers["link"]
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"action": "user"}, "'action'"),
        ({"action": "nothing."}, "unknown action"),
        ({"limit": 0}, "limit"),
        ({"since": 10, "until": 5}, "before until"),
        ({"outcome": "maybe"}, "outcome"),
        ({"actor": "a\x00b"}, "NUL"),
    ]
    for bad, mention in cases:
        resp = await client.get(f"{API}/audit", headers=bearer(tokens.admin), params=bad)
        assert_error(resp, 422, "invalid_request", mention)
