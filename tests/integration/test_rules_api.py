"""The rules API of a real `iot-hub web` process on a PostgreSQL database of its own: the rules
with their origins, edits by role, refused edits naming the field, conflicts, versions, diffs,
rollbacks and their audit rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import PostgresServer
from tests.support.web import API, Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration

KEY = "spindle_temp_c.threshold"


@pytest.fixture(scope="module")
def rules_database(postgres_server: PostgresServer) -> Iterator[str]:
    with postgres_server.own_database("iot_test_rules") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def tokens(rules_database: str) -> Tokens:
    return asyncio.run(create_tokens(rules_database))


@pytest.fixture(scope="module")
def web(
    rules_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    rules_file = tmp_path_factory.mktemp("rules") / "rules.yaml"
    rules_file.write_text(
        f"types:\n  cnc_spindle:\n    rules:\n      {KEY}: {{crit_high: 90}}\n", encoding="utf-8"
    )
    proc = WebProcess(
        tmp_path_factory.mktemp("web"),
        {
            "HUB_DATABASE_URL": rules_database,
            "HUB_REDIS_URL": redis_url,
            "HUB_RULES_FILE": str(rules_file),
        },
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
async def client(web: WebProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.url, timeout=15) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def spindle(body: dict[str, Any], device_id: str | None = None) -> dict[str, Any]:
    rules: list[dict[str, Any]] = body["rules"]
    (rule,) = [
        r
        for r in rules
        if r["device_type"] == "cnc_spindle" and r["device_id"] == device_id and r["key"] == KEY
    ]
    return rule


def change(fields: dict[str, Any], device_id: str | None = None) -> dict[str, Any]:
    return {"rule": KEY, "device_type": "cnc_spindle", "device_id": device_id, "fields": fields}


async def test_edit_history_diff_and_rollback(
    client: httpx.AsyncClient, tokens: Tokens, rules_database: str
) -> None:
    viewer, admin = auth(tokens.viewer), auth(tokens.admin)
    response = await client.get(f"{API}/rules", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 0
    fields = spindle(body)["fields"]
    assert (fields["warn_high"]["value"], fields["warn_high"]["origin"]) == (75, "default")
    assert (fields["crit_high"]["value"], fields["crit_high"]["origin"]) == (90, "file")

    edit = {"changes": [change({"warn_high": 70, "clear_after_s": 10})], "comment": "too late"}
    for role in ("viewer", "operator"):
        refused = await client.post(
            f"{API}/rules/edits", json=edit, headers=auth(getattr(tokens, role))
        )
        assert refused.status_code == 403, refused.text
        assert "admin only" in refused.json()["detail"]
    first = await client.post(f"{API}/rules/edits", json={**edit, "base_version": 0}, headers=admin)
    assert first.status_code == 201, first.text
    assert (first.json()["version"], first.json()["comment"]) == (1, "too late")

    # Refused by the model, naming the field; nothing stored.
    bad = await client.post(
        f"{API}/rules/edits", json={"changes": [change({"warn_high": 95})]}, headers=admin
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"].startswith(
        f"types.cnc_spindle.rules['{KEY}']: warn_high (95) must be below crit_high (90)"
    )
    wrong_type = await client.post(
        f"{API}/rules/edits", json={"changes": [change({"warn_high": [1]})]}, headers=admin
    )
    assert wrong_type.status_code == 422
    assert "body field 'changes.0.fields.warn_high" in wrong_type.json()["detail"]
    stale = await client.post(f"{API}/rules/edits", json={**edit, "base_version": 0}, headers=admin)
    assert stale.status_code == 409, stale.text
    assert (await client.get(f"{API}/rules", headers=viewer)).json()["version"] == 1

    device = await client.post(
        f"{API}/rules/edits",
        json={"changes": [change({"enabled": False}, "cnc-7")]},
        headers=admin,
    )
    assert device.status_code == 201, device.text
    now = (await client.get(f"{API}/rules", headers=viewer)).json()
    assert spindle(now)["fields"]["warn_high"] == {"value": 70, "origin": "edit", "device": False}
    assert spindle(now, "cnc-7")["enabled"] is False

    diff = await client.get(f"{API}/rules/diff", params={"from": 0, "to": 2}, headers=viewer)
    assert diff.status_code == 200, diff.text
    assert [c["text"] for c in diff.json()["changes"]] == [
        f"cnc_spindle {KEY}: clear_after_s 30 -> 10",
        f"cnc_spindle {KEY}: warn_high 75 -> 70",
        f"device cnc-7 (cnc_spindle) {KEY}: enabled (unset) -> false",
    ]

    back = await client.post(
        f"{API}/rules/versions/1/rollback", json={"comment": "cnc-7 again"}, headers=admin
    )
    assert back.status_code == 201, back.text
    assert (back.json()["version"], back.json()["rollback_of"]) == (3, 1)
    history = (await client.get(f"{API}/rules/versions", headers=viewer)).json()["items"]
    assert [(v["version"], v["rollback_of"]) for v in history] == [(3, 1), (2, None), (1, None)]
    assert [v["changes"] for v in history] == [
        [f"device cnc-7 (cnc_spindle) {KEY}: enabled false -> (unset)"],
        [f"device cnc-7 (cnc_spindle) {KEY}: enabled (unset) -> false"],
        [f"cnc_spindle {KEY}: clear_after_s 30 -> 10", f"cnc_spindle {KEY}: warn_high 75 -> 70"],
    ]
    same = await client.get(f"{API}/rules/diff", params={"from": 1, "to": 3}, headers=viewer)
    assert same.json()["changes"] == []
    assert (await client.get(f"{API}/rules/versions/9", headers=viewer)).status_code == 404
    missing = await client.post(f"{API}/rules/versions/9/rollback", headers=admin)
    assert missing.status_code == 404

    conn = await asyncpg.connect(rules_database)
    try:
        rows = await conn.fetch(
            "SELECT action, outcome, target FROM audit_log WHERE action LIKE 'rules.%' ORDER BY id"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("rules.edit", "success", "1"),
        ("rules.edit", "failure", "2"),
        ("rules.edit", "success", "2"),
        ("rules.rollback", "success", "3"),
    ]


async def test_bad_requests_name_the_parameter(client: httpx.AsyncClient, tokens: Tokens) -> None:
    admin = auth(tokens.admin)
    empty = await client.post(f"{API}/rules/edits", json={"changes": []}, headers=admin)
    assert empty.status_code == 422
    assert "changes" in empty.json()["detail"]
    extra = await client.post(
        f"{API}/rules/edits", json={"changes": [change({"kind": "flatline"})]}, headers=admin
    )
    assert extra.status_code == 422
    assert "fields.kind" in extra.json()["detail"]
    diff = await client.get(f"{API}/rules/diff", params={"from": -1, "to": 0}, headers=admin)
    assert diff.status_code == 422
    assert "'from'" in diff.json()["detail"]
    assert (await client.get(f"{API}/rules")).status_code == 401
    wrong_method = await client.put(f"{API}/rules/edits", headers=admin)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
