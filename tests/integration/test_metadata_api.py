"""The device metadata API of a real `iot-hub web` process on a PostgreSQL database of its own:
seeded type metadata, admin edits by role (refused ones naming the field, nothing stored), the
precedence admin > edge > seed, the hierarchy tree and its device filter, and the audit rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from tests.integration.conftest import PostgresServer
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def metadata_database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.own_database("iot_test_metadata") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def tokens(metadata_database: str) -> Tokens:
    return asyncio.run(create_tokens(metadata_database))


@pytest.fixture(scope="module")
def web(
    metadata_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    proc = WebProcess(
        tmp_path_factory.mktemp("web"),
        {"HUB_DATABASE_URL": metadata_database, "HUB_REDIS_URL": redis_url},
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
async def client(web: WebProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=15) as c:
        yield c


@pytest.fixture
async def db(metadata_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(metadata_database)
    await conn.execute("TRUNCATE device_metadata")
    await conn.execute("DELETE FROM devices")
    for device_id, site, device_type in (
        ("press-01", "plant-a", "hydraulic_press"),
        ("press-02", "plant-a", "hydraulic_press"),
        ("cnc-01", "plant-b", "cnc_spindle"),
    ):
        await conn.execute(
            "INSERT INTO devices (device_id, site, type, gateway_id, first_seen, last_seen, "
            "metrics) VALUES ($1, $2, $3, 'gw-m', now(), now(), ARRAY['ram_pressure_bar'])",
            device_id,
            site,
            device_type,
        )
    yield conn
    await conn.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_types_are_seeded_and_edits_win(
    client: httpx.AsyncClient, tokens: Tokens, db: asyncpg.Connection
) -> None:
    seeded = await client.get(f"{API}/metadata/types/hydraulic_press", headers=auth(tokens.viewer))
    assert seeded.status_code == 200
    ram = seeded.json()["effective"]["metrics"]["ram_pressure_bar"]
    assert ram["unit"] == "bar"
    assert ram["normal"] == [0.0, 250.0]

    edit = {"metrics": {"ram_pressure_bar": {"unit": "MPa", "engineering": [0, 40]}}}
    refused = await client.put(
        f"{API}/metadata/types/hydraulic_press", json=edit, headers=auth(tokens.operator)
    )
    assert refused.status_code == 403
    edited = await client.put(
        f"{API}/metadata/types/hydraulic_press", json=edit, headers=auth(tokens.admin)
    )
    assert edited.status_code == 200, edited.text
    ram = edited.json()["effective"]["metrics"]["ram_pressure_bar"]
    assert (ram["unit"], ram["engineering"], ram["normal"]) == ("MPa", [0.0, 40.0], [0.0, 250.0])

    listed = await client.get(f"{API}/metadata/types", headers=auth(tokens.viewer))
    assert "conveyor" in [t["key"] for t in listed.json()["items"]]


async def test_bad_edits_name_the_field_and_store_nothing(
    client: httpx.AsyncClient, tokens: Tokens, db: asyncpg.Connection
) -> None:
    for body, field in (
        (
            {"metrics": {"ram_pressure_bar": {"normal": [300, 1]}}},
            "metrics.ram_pressure_bar.normal",
        ),
        ({"metrics": {"Ram Pressure": {"unit": "bar"}}}, "metrics.Ram Pressure"),
        ({"area": "x" * 121}, "area"),
    ):
        resp = await client.put(
            f"{API}/metadata/devices/press-01", json=body, headers=auth(tokens.admin)
        )
        assert resp.status_code == 422, resp.text
        assert field in resp.text
    assert await db.fetchval("SELECT count(*) FROM device_metadata") == 0
    missing = await client.put(
        f"{API}/metadata/devices/nope", json={"area": "A"}, headers=auth(tokens.admin)
    )
    assert missing.status_code == 404


async def test_device_precedence_hierarchy_and_audit(
    client: httpx.AsyncClient, tokens: Tokens, db: asyncpg.Connection
) -> None:
    # What an edge reported: below the admin's edit, above the seed.
    await db.execute(
        "INSERT INTO device_metadata (scope, key, source, document, updated_by) VALUES "
        "('device', 'press-01', 'edge', $1::jsonb, 'gw-m')",
        '{"area": "Edge area", "line": "Line 1", '
        '"metrics": {"ram_pressure_bar": {"display_name": "Edge name", "unit": "psi"}}}',
    )
    body = {
        "display_name": "Press one",
        "area": "Forming",
        "metrics": {"ram_pressure_bar": {"display_name": "Ram pressure"}},
    }
    resp = await client.put(
        f"{API}/metadata/devices/press-01", json=body, headers=auth(tokens.admin)
    )
    assert resp.status_code == 200, resp.text
    effective = resp.json()["effective"]
    assert (effective["display_name"], effective["area"], effective["line"]) == (
        "Press one",
        "Forming",
        "Line 1",
    )
    ram = effective["metrics"]["ram_pressure_bar"]
    assert (ram["display_name"], ram["unit"], ram["normal"]) == (
        "Ram pressure",
        "psi",
        [0.0, 250.0],
    )

    tree = (await client.get(f"{API}/hierarchy", headers=auth(tokens.viewer))).json()["sites"]
    assert [(s["name"], s["devices"]) for s in tree] == [("plant-a", 2), ("plant-b", 1)]
    areas = [(a["name"], a["devices"]) for a in tree[0]["children"]]
    assert areas == [("", 1), ("Forming", 1)]

    found = await client.get(
        f"{API}/hierarchy/devices", params={"area": "Forming"}, headers=auth(tokens.viewer)
    )
    assert [(d["device_id"], d["line"]) for d in found.json()["items"]] == [("press-01", "Line 1")]

    reset = await client.delete(f"{API}/metadata/devices/press-01", headers=auth(tokens.admin))
    assert reset.status_code == 204
    after = await client.get(f"{API}/metadata/devices/press-01", headers=auth(tokens.viewer))
    assert after.json()["effective"]["area"] == "Edge area"

    rows = await db.fetch(
        "SELECT action, outcome, target FROM audit_log WHERE action LIKE 'metadata.%' "
        "AND target = 'device:press-01' ORDER BY id"
    )
    assert [tuple(r) for r in rows][-2:] == [
        ("metadata.edit", "success", "device:press-01"),
        ("metadata.delete", "success", "device:press-01"),
    ]


async def test_the_device_list_filters_by_area_line_and_machine(
    client: httpx.AsyncClient, tokens: Tokens, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO device_metadata (scope, key, source, document, updated_by) VALUES "
        "('device', 'press-01', 'edge', $1::jsonb, 'modbus@gw-m'), "
        "('device', 'cnc-01', 'edge', $2::jsonb, 'opcua@gw-m')",
        '{"area": "Forming", "line": "Line 2", "machine": "P-100", "metrics": {}}',
        '{"area": "Forming", "line": "Line 3", "metrics": {}}',
    )

    async def ids(**params: str) -> list[str]:
        resp = await client.get(f"{API}/devices", params=params, headers=auth(tokens.viewer))
        assert resp.status_code == 200, resp.text
        return sorted(d["device_id"] for d in resp.json()["items"])

    assert await ids(area="Forming") == ["cnc-01", "press-01"]
    assert await ids(area="Forming", line="Line 2") == ["press-01"]
    assert await ids(machine="P-100") == ["press-01"]
    assert await ids(area="") == ["press-02"]  # '' : no area named
    assert await ids(area="Forming", site="plant-b") == ["cnc-01"]  # with the other filters
    assert await ids(area="Nowhere") == []
    assert await ids() == ["cnc-01", "press-01", "press-02"]
    # an admin's place wins over the edge's
    put = await client.put(
        f"{API}/metadata/devices/cnc-01", json={"area": "Machining"}, headers=auth(tokens.admin)
    )
    assert put.status_code == 200, put.text
    assert await ids(area="Forming") == ["press-01"]
    bad = await client.get(f"{API}/devices", params={"line": "a\x00b"}, headers=auth(tokens.viewer))
    assert bad.status_code == 422

    doc = (await client.get("/openapi.json")).json()
    params = {p["name"] for p in doc["paths"][f"{API}/devices"]["get"]["parameters"]}
    assert {"area", "line", "machine"} <= params
