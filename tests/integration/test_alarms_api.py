"""The alarm routes of a real `iot-hub web` process (docs/alarms.md) on this session's PostgreSQL:
shelving, bulk actions and maintenance windows, with roles, audit and bad input."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from hub.rules.model import AlertTransition
from hub.storage.model import AlertRow
from hub.storage.postgres import Database
from tests.support.readings import make_reading
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration

HOUR = 3_600_000
MAX_HOURS = 6


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
            "HUB_SHELVE_MAX_HOURS": str(MAX_HOURS),
        },
    ).start()
    yield proc
    code = proc.stop()
    assert code in (0, -signal.SIGTERM), proc.log()[-3000:]


@pytest.fixture
async def client(web: WebProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=15) as c:
        yield c


@pytest.fixture
async def clean(pg: asyncpg.Connection) -> asyncpg.Connection:
    await pg.execute("TRUNCATE maintenance_windows RESTART IDENTITY")
    return pg


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def now_ms() -> int:
    return int(time.time() * 1000)


def tag() -> str:
    return f"a{uuid.uuid4().hex[:8]}"


async def raise_alert(
    database: Database, device_id: str, severity: str = "warning", rule: str = "temp.threshold"
) -> AlertRow:
    row = await database.apply_alert(
        AlertTransition(
            kind="raised",
            device_id=device_id,
            gateway_id="gw-a",
            rule=rule,
            severity=severity,  # type: ignore[arg-type]
            metric="temp",
            value=81.0,
            message="temp 81.0 above 80",
            ts=now_ms(),
        )
    )
    assert row is not None
    return row


def error(resp: httpx.Response, status: int, *mentions: str) -> str:
    assert resp.status_code == status, resp.text
    detail: str = resp.json()["detail"]
    for text in mentions:
        assert text in detail, f"{text!r} not in {detail!r}"
    return detail


class Audit:
    """This test's audit rows: the log is append-only and alert ids restart with every test."""

    def __init__(self, pg: asyncpg.Connection, since_id: int) -> None:
        self._pg = pg
        self._since_id = since_id

    async def actions(self, target: str) -> list[str]:
        rows = await self._pg.fetch(
            "SELECT action FROM audit_log WHERE target = $1 AND id > $2 ORDER BY id",
            target,
            self._since_id,
        )
        return [r["action"] for r in rows]


@pytest.fixture
async def audit(pg: asyncpg.Connection) -> Audit:
    return Audit(pg, await pg.fetchval("SELECT coalesce(max(id), 0) FROM audit_log"))


# -- shelving ------------------------------------------------------------------------------------


async def test_an_operator_shelves_and_unshelves_an_alert(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, audit: Audit
) -> None:
    row = await raise_alert(database, tag())
    before = now_ms()
    resp = await client.post(
        f"{API}/alerts/{row.id}/shelve",
        headers=bearer(tokens.operator),
        json={"hours": 2, "reason": "sensor being replaced"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["shelved_by"] == f"token:{tokens.names['operator']}"
    assert body["shelve_reason"] == "sensor being replaced"
    assert before + 2 * HOUR <= body["shelved_until"] <= now_ms() + 2 * HOUR
    listed = await client.get(
        f"{API}/alerts", headers=bearer(tokens.viewer), params={"device_id": row.device_id}
    )
    assert listed.json()["items"][0]["shelved_until"] == body["shelved_until"]
    resp = await client.post(f"{API}/alerts/{row.id}/unshelve", headers=bearer(tokens.admin))
    assert resp.status_code == 200, resp.text
    assert resp.json()["shelved_until"] is None
    assert await audit.actions(str(row.id)) == ["alert.shelve", "alert.unshelve"]


async def test_shelving_is_refused_past_the_maximum_or_without_a_reason(
    client: httpx.AsyncClient, tokens: Tokens, database: Database
) -> None:
    row = await raise_alert(database, tag())
    url = f"{API}/alerts/{row.id}/shelve"
    headers = bearer(tokens.operator)
    too_long = await client.post(url, headers=headers, json={"hours": MAX_HOURS + 1, "reason": "x"})
    error(too_long, 422, "hours", f"at most {MAX_HOURS}")
    too_far = await client.post(
        url, headers=headers, json={"until": now_ms() + (MAX_HOURS + 1) * HOUR, "reason": "x"}
    )
    error(too_far, 422, "until", f"at most {MAX_HOURS}")
    error(await client.post(url, headers=headers, json={"hours": 1}), 422, "reason")
    error(await client.post(url, headers=headers, json={"hours": 1, "reason": " "}), 422, "reason")
    error(await client.post(url, headers=headers, json={"reason": "x"}), 422, "hours or until")
    stored = await database.get_alert(row.id)
    assert stored is not None
    assert stored.shelved_until is None  # nothing applied
    viewer = await client.post(url, headers=bearer(tokens.viewer), json={"hours": 1, "reason": "x"})
    error(viewer, 403, "operator")
    missing = await client.post(
        f"{API}/alerts/999999999/shelve", headers=headers, json={"hours": 1, "reason": "x"}
    )
    error(missing, 404, "no alert 999999999")


# -- bulk ----------------------------------------------------------------------------------------


async def test_bulk_acknowledge_by_filter_with_one_comment(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, audit: Audit
) -> None:
    device = tag()
    rows = [await raise_alert(database, device, rule=f"r{i}") for i in range(3)]
    other = await raise_alert(database, tag())
    body = {"action": "acknowledge", "filter": {"device_id": device}, "comment": "known issue"}
    resp = await client.post(f"{API}/alerts/bulk", headers=bearer(tokens.operator), json=body)
    assert resp.status_code == 200, resp.text
    assert sorted(resp.json()["applied"]) == sorted(r.id for r in rows)
    for r in rows:
        stored = await database.get_alert(r.id)
        assert stored is not None
        assert (stored.acknowledged, stored.ack_comment) == (True, "known issue")
        assert await audit.actions(str(r.id)) == ["alert.acknowledge"]
    untouched = await database.get_alert(other.id)
    assert untouched is not None
    assert not untouched.acknowledged
    again = await client.post(f"{API}/alerts/bulk", headers=bearer(tokens.operator), json=body)
    assert again.json()["applied"] == []
    assert {s["reason"] for s in again.json()["skipped"]} == {"already acknowledged"}


async def test_bulk_shelve_by_ids(
    client: httpx.AsyncClient, tokens: Tokens, database: Database
) -> None:
    rows = [await raise_alert(database, tag()) for _ in range(2)]
    ids = [r.id for r in rows]
    resp = await client.post(
        f"{API}/alerts/bulk",
        headers=bearer(tokens.operator),
        json={"action": "shelve", "ids": [*ids, 999999999], "comment": "night shift", "hours": 1},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["applied"] == ids
    assert resp.json()["skipped"] == [{"id": 999999999, "reason": "no such alert"}]
    for alert_id in ids:
        stored = await database.get_alert(alert_id)
        assert stored is not None
        assert stored.shelve_reason == "night shift"
        assert stored.shelved(now_ms())


async def test_bad_bulk_requests_are_refused_whole(
    client: httpx.AsyncClient, tokens: Tokens, database: Database
) -> None:
    row = await raise_alert(database, tag())
    url = f"{API}/alerts/bulk"
    headers = bearer(tokens.operator)
    no_reason = {"action": "shelve", "ids": [row.id], "hours": 1}
    error(await client.post(url, headers=headers, json=no_reason), 422, "comment is required")
    too_long = {"action": "shelve", "ids": [row.id], "hours": MAX_HOURS * 2, "comment": "x"}
    error(await client.post(url, headers=headers, json=too_long), 422, "hours")
    both = {"action": "acknowledge", "ids": [row.id], "filter": {"status": "active"}}
    error(await client.post(url, headers=headers, json=both), 422, "ids or filter")
    unknown = {"action": "delete", "ids": [row.id]}
    error(await client.post(url, headers=headers, json=unknown), 422, "action")
    viewer = await client.post(
        url, headers=bearer(tokens.viewer), json={"action": "acknowledge", "ids": [row.id]}
    )
    error(viewer, 403)
    stored = await database.get_alert(row.id)
    assert stored is not None
    assert (stored.acknowledged, stored.shelved_until) == (False, None)


# -- maintenance windows ---------------------------------------------------------------------------


def window_body(name: str = "Line 3 overhaul", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "suppress": "alerts",
        "schedule": {"kind": "once", "start": now_ms() - HOUR, "end": now_ms() + HOUR},
        "scope": {"sites": ["plant-a"]},
        "comment": "bearing swap",
    }
    body.update(changes)
    return body


async def test_an_admin_creates_updates_and_deletes_a_window(
    client: httpx.AsyncClient, tokens: Tokens, clean: asyncpg.Connection, audit: Audit
) -> None:
    admin = bearer(tokens.admin)
    resp = await client.post(f"{API}/maintenance-windows", headers=admin, json=window_body())
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert (created["name"], created["active"], created["suppress"]) == (
        "Line 3 overhaul",
        True,
        "alerts",
    )
    window_id = created["id"]
    listed = await client.get(f"{API}/maintenance-windows", headers=bearer(tokens.viewer))
    assert [w["id"] for w in listed.json()] == [window_id]
    weekly = {
        "kind": "weekly",
        "weekdays": [5, 6],
        "start": "22:00",
        "duration_minutes": 120,
        "timezone": "Europe/Berlin",
    }
    resp = await client.put(
        f"{API}/maintenance-windows/{window_id}",
        headers=admin,
        json=window_body(schedule=weekly, suppress="notifications"),
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["schedule"] == weekly
    got = await client.get(f"{API}/maintenance-windows/{window_id}", headers=admin)
    assert got.json()["suppress"] == "notifications"
    gone = await client.delete(f"{API}/maintenance-windows/{window_id}", headers=admin)
    assert gone.status_code == 200
    error(await client.get(f"{API}/maintenance-windows/{window_id}", headers=admin), 404)
    actions = await audit.actions(str(window_id))
    assert actions == ["window.create", "window.update", "window.delete"]


async def test_active_windows_for_a_device(
    client: httpx.AsyncClient, tokens: Tokens, database: Database, clean: asyncpg.Connection
) -> None:
    device = tag()
    await database.ensure_partitions(now_ms(), ahead_days=1)
    await database.write_readings([make_reading(device, now_ms(), {"t": 1.0}, site="plant-a")])
    admin = bearer(tokens.admin)
    await client.post(f"{API}/maintenance-windows", headers=admin, json=window_body("covers"))
    past = {"kind": "once", "start": now_ms() - 2 * HOUR, "end": now_ms() - HOUR}
    await client.post(
        f"{API}/maintenance-windows", headers=admin, json=window_body("over", schedule=past)
    )
    await client.post(
        f"{API}/maintenance-windows",
        headers=admin,
        json=window_body("elsewhere", scope={"sites": ["plant-b"]}),
    )
    viewer = bearer(tokens.viewer)
    active = await client.get(
        f"{API}/maintenance-windows", headers=viewer, params={"device_id": device}
    )
    assert [w["name"] for w in active.json()] == ["covers"]
    every_active = await client.get(
        f"{API}/maintenance-windows", headers=viewer, params={"active": "true"}
    )
    assert [w["name"] for w in every_active.json()] == ["covers", "elsewhere"]


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"scope": {}}, "scope must list at least one"),
        ({"scope": {"sites": [], "devices": []}}, "scope must list at least one"),
        ({"name": "  "}, "name"),
        ({"suppress": "all"}, "suppress"),
        ({"schedule": {"kind": "once", "start": 2000, "end": 1000}}, "schedule.end"),
        (
            {
                "schedule": {
                    "kind": "weekly",
                    "weekdays": [1],
                    "start": "22:00",
                    "duration_minutes": 60,
                    "timezone": "Moon/Base",
                }
            },
            "schedule.timezone",
        ),
        ({"schedule": {"kind": "weekly", "start": "25:00"}}, "schedule.weekdays"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_windows_are_refused_naming_the_field(
    client: httpx.AsyncClient,
    tokens: Tokens,
    clean: asyncpg.Connection,
    changes: dict[str, Any],
    mentions: str,
) -> None:
    resp = await client.post(
        f"{API}/maintenance-windows", headers=bearer(tokens.admin), json=window_body(**changes)
    )
    error(resp, 422, mentions)
    assert await clean.fetchval("SELECT count(*) FROM maintenance_windows") == 0


async def test_only_admins_write_windows_and_names_are_unique(
    client: httpx.AsyncClient, tokens: Tokens, clean: asyncpg.Connection
) -> None:
    url = f"{API}/maintenance-windows"
    error(await client.post(url, headers=bearer(tokens.operator), json=window_body()), 403, "admin")
    first = await client.post(url, headers=bearer(tokens.admin), json=window_body())
    assert first.status_code == 201
    twice = await client.post(url, headers=bearer(tokens.admin), json=window_body())
    error(twice, 422, "name", "taken")
    window_id = first.json()["id"]
    put = await client.put(
        f"{url}/{window_id}", headers=bearer(tokens.operator), json=window_body()
    )
    error(put, 403)
    error(await client.delete(f"{url}/{window_id}", headers=bearer(tokens.viewer)), 403)
    error(await client.delete(f"{url}/99999", headers=bearer(tokens.admin)), 404)
    assert await clean.fetchval("SELECT count(*) FROM maintenance_windows") == 1


async def test_openapi_documents_the_alarm_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        (f"{API}/alerts/{{alert_id}}/shelve", "post"),
        (f"{API}/alerts/{{alert_id}}/unshelve", "post"),
        (f"{API}/alerts/bulk", "post"),
        (f"{API}/maintenance-windows", "get"),
        (f"{API}/maintenance-windows", "post"),
        (f"{API}/maintenance-windows/{{window_id}}", "put"),
        (f"{API}/maintenance-windows/{{window_id}}", "delete"),
    ):
        op = paths[path][method]
        assert {"401", "422", "503"} <= set(op["responses"]), path
        assert op["security"] == [{"HTTPBearer": []}], path
