"""Shaping a batch for PostgreSQL, alert rows, and the migrations shipped in `db`: no database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest

import hub.storage.postgres
from hub.rules.model import AlertTransition
from hub.storage.migrations import MigrationError, load_migrations
from hub.storage.model import (
    AlertRow,
    AlertTransitionLike,
    DeviceSeen,
    distinct_buckets,
    flatten_readings,
    rollup_bucket_ms,
    summarise_devices,
)
from tests.support.readings import make_reading

T = 1_764_288_000_000  # 2025-11-28T00:00:00Z


reading = make_reading


def test_flatten_gives_one_row_per_metric_with_booleans_as_one_and_zero() -> None:
    rows = flatten_readings(
        [
            reading("oven-1", T, {"temp_c": 231.5, "running": True, "jammed": False}, seq=7),
            reading("oven-2", T + 1, {"temp_c": 20.0}),
        ]
    )
    assert rows == [
        ("oven-1", "temp_c", T, 231.5, 7),
        ("oven-1", "running", T, 1.0, 7),
        ("oven-1", "jammed", T, 0.0, 7),
        ("oven-2", "temp_c", T + 1, 20.0, None),
    ]
    assert all(type(row[3]) is float for row in rows)


def test_summarise_devices_takes_identity_from_the_newest_reading() -> None:
    seen = summarise_devices(
        [
            reading("b", T + 50, {"x": 1.0}, gateway_id="gw-new", type=None),
            reading("b", T + 10, {"y": 1.0}, gateway_id="gw-old", type="press"),
            reading("a", T, {"x": 1.0}),
            reading("b", T + 30, {"x": 2.0, "z": True}, gateway_id="gw-mid"),
        ]
    )
    assert seen == [
        DeviceSeen("a", "site-1", None, "gw-1", T, T, ("x",)),
        # The newest reading has no type: the newest one that had it wins.
        DeviceSeen("b", "site-1", "press", "gw-new", T + 10, T + 50, ("x", "y", "z")),
    ]


def test_rollup_buckets_are_utc_minutes_and_deduplicated() -> None:
    assert rollup_bucket_ms(T + 59_999) == T
    assert rollup_bucket_ms(T + 60_000) == T + 60_000
    assert distinct_buckets([("d", "m", T + 5), ("d", "m", T + 59_000), ("d", "n", T)]) == [
        ("d", "m", T),
        ("d", "n", T),
    ]


def cleared_alert() -> AlertRow:
    return AlertRow(
        id=3,
        device_id="cnc-01",
        gateway_id=None,
        rule="cnc_spindle.spindle_temp_c.threshold",
        severity="critical",
        state="cleared",
        acknowledged=True,
        ack_by="alice",
        ack_at=T + 2,
        ack_comment="on it",
        metric="spindle_temp_c",
        value=91.5,
        message="spindle too hot",
        raised_at=T,
        updated_at=T + 1,
        cleared_at=T + 3,
        cleared_by=None,
        occurrences=2,
    )


def test_alert_row_to_json_is_json_ready_with_epoch_ms() -> None:
    row = cleared_alert()
    data = row.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "id": 3,
        "device_id": "cnc-01",
        "gateway_id": None,
        "rule": "cnc_spindle.spindle_temp_c.threshold",
        "severity": "critical",
        "state": "cleared",
        "acknowledged": True,
        "ack_by": "alice",
        "ack_at": T + 2,
        "ack_comment": "on it",
        "metric": "spindle_temp_c",
        "value": 91.5,
        "message": "spindle too hot",
        "raised_at": T,
        "updated_at": T + 1,
        "cleared_at": T + 3,
        "cleared_by": None,
        "occurrences": 2,
        "shelved_by": None,
        "shelved_at": None,
        "shelved_until": None,
        "shelve_reason": None,
    }


def test_the_rules_transition_fits_the_storage_protocol() -> None:
    # Checked by mypy: a change to either side breaks the type check here.
    transition: AlertTransitionLike = AlertTransition(
        kind="raised",
        device_id="cnc-01",
        gateway_id="gw-1",
        rule="r",
        severity="warning",
        metric=None,
        value=None,
        message="m",
        ts=T,
    )
    assert transition.kind == "raised"


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_init"
    assert "CREATE TABLE readings" in migrations[0].sql


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (["0001_init.sql", "2_oops.sql"], "2_oops.sql"),
        (["0001_init.sql", "0001_again.sql"], "two migrations numbered 1"),
    ],
)
def test_badly_named_migrations_are_refused(
    files: list[str], error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"fake_db_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    for name in files:
        (tmp_path / package / name).write_text("SELECT 1;")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MigrationError, match=error):
        load_migrations(package)


def test_public_api() -> None:
    assert set(hub.storage.postgres.__all__) == {
        "RECORD_ERRORS",
        "TRANSIENT_ERRORS",
        "AlertRow",
        "AlertTransitionLike",
        "Database",
        "WriteResult",
    }
    transient = hub.storage.postgres.TRANSIENT_ERRORS
    for error in (
        ConnectionRefusedError,
        TimeoutError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.DeadlockDetectedError,
    ):
        assert issubclass(error, transient)
    for error in (asyncpg.UniqueViolationError, asyncpg.QueryCanceledError, asyncpg.InterfaceError):
        assert not issubclass(error, transient)
