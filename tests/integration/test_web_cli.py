"""`iot-hub user`, `iot-hub token` and `iot-hub web` as processes, as an operator runs them,
against a database of the test's own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from hub.storage.accounts import PostgresAccounts
from hub.storage.read_model import connect_pool
from hub.web.model import Principal
from tests.support.process import ROOT, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def iot_hub(
    *args: str, database_url: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        cwd=ROOT,
        env={**os.environ, "HUB_DATABASE_URL": database_url, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def auth(fresh_database: str) -> AsyncIterator[PostgresAccounts]:
    pool = await connect_pool(fresh_database)
    yield PostgresAccounts(pool)
    await pool.close()


async def test_user_add_from_stdin_then_the_user_can_log_in(
    fresh_database: str, auth: PostgresAccounts
) -> None:
    result = await asyncio.to_thread(
        iot_hub,
        "user", "add", "boss", "--role", "admin", "--password-stdin",
        database_url=fresh_database,
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "event=user_added user=boss role=admin" in result.stderr
    assert "HUB_DATABASE_URL=postgresql://iot:***@" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert await auth.authenticate("boss", PASSWORD) == Principal("boss", "admin")
    assert await auth.authenticate("boss", PASSWORD + "!") is None


async def test_user_add_refuses_a_short_password_in_one_line(fresh_database: str) -> None:
    result = await asyncio.to_thread(
        iot_hub,
        "user", "add", "boss", "--role", "admin", "--password-stdin",
        database_url=fresh_database,
        stdin="short\n",
    )  # fmt: skip
    assert result.returncode == 2
    assert "event=user_add_failed" in result.stderr
    assert "at least 8 characters" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_password_is_never_an_argument() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "user", "add", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--password-stdin" in result.stdout
    assert "--password " not in result.stdout


async def test_token_create_prints_only_the_token_and_revoke_ends_it(
    fresh_database: str, auth: PostgresAccounts
) -> None:
    created = await asyncio.to_thread(
        iot_hub, "token", "create", "ci", "--role", "viewer", database_url=fresh_database
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("iot_")
    assert "\n" not in token  # the settings went to stderr
    assert "effective settings" in created.stderr
    assert token not in created.stderr
    assert await auth.verify_token(token) == Principal("token:ci", "viewer")

    duplicate = await asyncio.to_thread(
        iot_hub, "token", "create", "ci", "--role", "admin", database_url=fresh_database
    )
    assert duplicate.returncode == 2
    assert "revoke it first" in duplicate.stderr

    revoked = await asyncio.to_thread(iot_hub, "token", "revoke", "ci", database_url=fresh_database)
    assert revoked.returncode == 0, revoked.stderr
    assert "event=token_revoked token=ci" in revoked.stderr
    assert await auth.verify_token(token) is None

    again = await asyncio.to_thread(iot_hub, "token", "revoke", "ci", database_url=fresh_database)
    assert again.returncode == 1
    assert "no active token" in again.stderr


async def test_user_and_token_commands_need_a_migrated_database(blank_database: str) -> None:
    result = await asyncio.to_thread(
        iot_hub, "token", "create", "ci", "--role", "viewer", database_url=blank_database
    )
    assert result.returncode == 1
    assert "iot-hub migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- iot-hub web -------------------------------------------------------------------------------


async def test_web_refuses_to_start_without_a_storage_secret(fresh_database: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HUB_WEB_STORAGE_SECRET"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub.cli", "web"],
        cwd=ROOT,
        env={**env, "HUB_DATABASE_URL": fresh_database, "HUB_HTTP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "event=web_refused" in result.stderr
    assert "HUB_WEB_STORAGE_SECRET is not set" in result.stderr
    assert "Traceback" not in result.stderr


async def test_web_refuses_an_unmigrated_database(blank_database: str) -> None:
    result = await asyncio.to_thread(
        iot_hub,
        "web",
        database_url=blank_database,
        env={"HUB_WEB_STORAGE_SECRET": "x" * 32, "HUB_HTTP_PORT": str(free_port())},
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert len(lines) == 1
    assert "run `iot-hub migrate` first" in lines[0]
    assert "Traceback" not in result.stderr


async def test_web_refuses_an_invalid_rules_file(fresh_database: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("types:\n  conveyor:\n    rules:\n      jammed.threshold: {samples: 3}\n")
    result = await asyncio.to_thread(
        iot_hub,
        "web",
        database_url=fresh_database,
        env={
            "HUB_WEB_STORAGE_SECRET": "x" * 32,
            "HUB_HTTP_PORT": str(free_port()),
            "HUB_RULES_FILE": str(rules),
        },
    )
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert "event=rules_invalid" in line
    assert "jammed.threshold" in line
    assert "samples" in line
    assert "Traceback" not in result.stderr


def get(url: str) -> tuple[int, str, str]:
    """(status, body, Location) without following redirects; status 0 if nothing answers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("location", "")
    except (urllib.error.URLError, OSError):
        return 0, "", ""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_web_serves_and_stops_cleanly(
    fresh_database: str, tmp_path: Path, stop: signal.Signals
) -> None:
    port = free_port()
    secret = "cookie-signing-secret-for-this-test"
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "web"],
            cwd=ROOT,
            env={
                **os.environ,
                "HUB_DATABASE_URL": fresh_database,
                "HUB_HTTP_PORT": str(port),
                "HUB_WEB_STORAGE_SECRET": secret,
                "NICEGUI_STORAGE_PATH": str(tmp_path / "nicegui"),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"iot-hub web exited with {proc.returncode}:\n{log_text()}")
            return get(f"{base}/healthz")[0] == 200

        def log_text() -> str:
            return log_path.read_text(errors="replace")

        wait_until(healthy, 60, "iot-hub web answering /healthz")
        status, _, location = get(f"{base}/")
        assert status in (302, 303, 307)
        assert "/login" in location
        assert get(f"{base}/openapi.json")[0] == 200

        proc.send_signal(stop)
        code = proc.wait(timeout=30)
        text = log_text()
        assert code == 0, text
        assert "event=web_started" in text
        assert "event=web_stopped" in text
        assert "HUB_WEB_STORAGE_SECRET=***" in text
        assert secret not in text
        assert "Traceback" not in text
        assert f"event=web_exit signal={stop.name}" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


async def test_users_table_is_created_by_migrate(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        roles = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'users'::regclass AND contype = 'c'"
        )
    finally:
        await conn.close()
    assert all(role in roles for role in ("viewer", "operator", "admin"))


# -- user remove and list, token expiry and list, all audited as the CLI ------------------------


async def test_cli_changes_are_audited_as_the_cli_and_tokens_can_expire(
    fresh_database: str, auth: PostgresAccounts
) -> None:
    async def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(iot_hub, *args, database_url=fresh_database, stdin=stdin)

    assert (await run("user", "add", "olga", "--role", "operator", "--password-stdin",
                      stdin=PASSWORD + "\n")).returncode == 0  # fmt: skip
    changed = await run(
        "user", "add", "olga", "--role", "viewer", "--password-stdin", stdin="new " + PASSWORD
    )
    assert changed.returncode == 0, changed.stderr
    assert "event=user_updated user=olga role=viewer" in changed.stderr

    listed = await run("user", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1:] == [f"{'olga':<24} viewer"]

    created = await run("token", "create", "ci", "--role", "viewer", "--expires-in", "30d")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert await auth.verify_token(token) == Principal("token:ci", "viewer")
    tokens = await run("token", "list")
    assert tokens.returncode == 0, tokens.stderr
    [header, row] = tokens.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "ROLE", "STATE", "EXPIRES"]
    assert row.split()[:3] == ["ci", "viewer", "active"]
    assert "never" not in row  # it has an expiry date
    assert token not in tokens.stdout + tokens.stderr
    assert (await run("token", "revoke", "ci")).returncode == 0

    removed = await run("user", "remove", "olga")
    assert removed.returncode == 0, removed.stderr
    assert "event=user_removed user=olga" in removed.stderr
    assert await auth.get_user("olga") is None
    missing = await run("user", "remove", "olga")
    assert missing.returncode == 1
    assert "no such user" in missing.stderr

    conn = await asyncpg.connect(fresh_database)
    try:
        rows = await conn.fetch("SELECT actor, action, target, client FROM audit_log ORDER BY id")
        everything = await conn.fetchval("SELECT string_agg(audit_log::text, ' ') FROM audit_log")
    finally:
        await conn.close()
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("cli", "user.add", "olga"),
        ("cli", "user.update", "olga"),
        ("cli", "token.create", "ci"),
        ("cli", "token.revoke", "ci"),
        ("cli", "user.remove", "olga"),
    ]
    assert all("@" in r["client"] for r in rows)  # <os user>@<host>
    for secret in (PASSWORD, token):
        assert secret not in everything


async def test_a_bad_expiry_is_one_line_not_a_traceback(fresh_database: str) -> None:
    result = await asyncio.to_thread(
        iot_hub, "token", "create", "ci", "--role", "viewer", "--expires-in", "forever",
        database_url=fresh_database,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--expires-in" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
