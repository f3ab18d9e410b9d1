"""Fuzz the API from its own OpenAPI document (schemathesis) against a real `iot-hub web`: for
every operation, generated requests, valid and invalid, with and without a token; every
response must be one the document describes (status code, content type, body schema) and
none may be a 5xx. Bounded: a few dozen examples per operation, well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.rules.model import AlertTransition
from hub.storage.live import LiveStore
from hub.storage.model import Severity
from hub.storage.postgres import Database
from protocol import NormalisedReading
from tests.support.web import Tokens, WebProcess, create_tokens

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30  # per operation and phase: the whole run takes some 10-20 s

# start < end (since < until) is a rule between two parameters, which OpenAPI cannot state: a
# request breaking it is schema-valid, and 422 is the right answer to it. So are a notification
# channel or route (a JSON object, as in the notifications file, checked by hub.notify.config:
# a route's channels must exist), and a metadata document (checked by hub.metadata.model).
# Everything else is the default.
CONFIG = """
[[operations]]
include-operation-id = "getReadings"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "422"]

[[operations]]
include-operation-id = "listAudit"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "422"]

# A schema-valid rule edit may still break the rules model (422) or race another (409).
[[operations]]
include-operation-id = "editRules"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "409", "422"]

[[operations]]
include-operation-id = "rollbackRules"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "getRuleVersion"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404"]

[[operations]]
include-operation-id = "diffRuleVersions"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404"]

# A schema-valid shelf or window may still break a rule between fields (a reason, a future
# end, a scope with something in it, a time zone that exists): 422 naming the field.
[[operations]]
include-operation-id = "shelveAlert"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "bulkAlerts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "422"]

[[operations]]
include-operation-id = "createMaintenanceWindow"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "422"]

[[operations]]
include-operation-id = "updateMaintenanceWindow"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "422"]

[[operations]]
include-operation-id = "createNotificationChannel"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "putNotificationChannel"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "createNotificationRoute"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "putNotificationRoute"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

[[operations]]
include-operation-id = "editTypeMetadata"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "422"]

[[operations]]
include-operation-id = "editDeviceMetadata"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "422"]
"""


async def _seed(dsn: str, redis_url: str) -> None:
    """A few devices with readings and latest values, and alerts, so that the lists the fuzzer
    reads are not empty and their items are checked against the schema too."""
    now = int(time.time() * 1000)
    readings = [
        NormalisedReading(
            site=f"fz-site-{d % 2}",
            device_id=f"fz-dev-{d}",
            type="cnc_spindle" if d % 2 else None,
            ts=now - 60_000 + i * 1000,
            seq=i,
            metrics={"spindle_temp_c": 60.0 + i, "running": bool(i % 2)},
            gateway_id="fz-gw",
            received_ts=now,
        )
        for d in range(3)
        for i in range(30)
    ]
    db = await Database.connect(dsn)
    live = LiveStore.from_url(redis_url)
    try:
        await db.ensure_partitions(now, ahead_days=1)
        await db.write_readings(readings)
        await live.update_latest(readings)
        severities: list[tuple[int, Severity]] = [(0, "warning"), (1, "critical")]
        for d, severity in severities:
            await db.apply_alert(
                AlertTransition(
                    kind="raised",
                    device_id=f"fz-dev-{d}",
                    gateway_id="fz-gw",
                    rule="fuzz.rule",
                    severity=severity,
                    metric="spindle_temp_c",
                    value=90.0,
                    message="seeded for the fuzz test",
                    ts=now,
                )
            )
    finally:
        await live.aclose()
        await db.close()


@pytest.fixture(scope="module")
def fuzz_tokens(postgres: str) -> Tokens:
    return asyncio.run(create_tokens(postgres))


@pytest.fixture(scope="module")
def fuzz_web(
    postgres: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    asyncio.run(_seed(postgres, redis_url))
    proc = WebProcess(
        tmp_path_factory.mktemp("web-fuzz"),
        {"HUB_DATABASE_URL": postgres, "HUB_REDIS_URL": redis_url},
    ).start()
    yield proc
    proc.stop()


def test_every_response_is_documented_and_none_is_a_server_error(
    fuzz_web: WebProcess, fuzz_tokens: Tokens, tmp_path: Path
) -> None:
    """`schemathesis run` with every check, in all its phases: coverage (boundary and invalid
    values of each parameter, missing token), fuzzing (positive and negative), and stateful
    sequences that follow the document's links (list alerts -> acknowledge the first -> clear
    it). The document has no examples, so that phase has nothing to do."""
    cli = Path(sys.executable).with_name("schemathesis")
    assert cli.exists(), "schemathesis is not installed: pip install -e '.[dev]'"
    # The CLI, not the pytest plugin: its lazy loader (`from_fixture`) needs a private
    # attribute that pytest 9 no longer has. The CLI is also what one runs by hand.
    command = [
        str(cli),
        "run",
        f"{fuzz_web.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--request-timeout",
        "10",
        "--header",
        # An admin's: every operation, the audit log's too, answers with data, not 403.
        f"Authorization: Bearer {fuzz_tokens.admin}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command.insert(1, f"--config-file={config}")
    result = subprocess.run(
        command,
        cwd=tmp_path,  # its own files stay out of the work tree
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20_000:]
    # It did test: every operation, with some hundreds of cases, none failed.
    tested = re.search(r"Tested: (\d+)", output)
    assert tested is not None, output[-2000:]
    with urllib.request.urlopen(f"{fuzz_web.url}/openapi.json", timeout=10) as resp:
        document = json.load(resp)
    operations = sum(len(methods) for methods in document["paths"].values())
    assert int(tested[1]) == operations == 44, output[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases is not None, output[-2000:]
    assert int(cases[1]) >= 200
    assert int(cases[1]) == int(cases[2]), output[-2000:]


def test_the_fuzz_run_left_the_web_process_healthy(
    fuzz_web: WebProcess, fuzz_tokens: Tokens
) -> None:
    """Whatever the fuzzer sent, nothing the server logged was an error."""
    errors = [
        line
        for line in fuzz_web.log().splitlines()
        if "level=error" in line or "level=critical" in line or "Traceback" in line
    ]
    assert not errors, "\n".join(errors[:10])
    assert fuzz_web.proc is not None
    assert fuzz_web.proc.poll() is None
