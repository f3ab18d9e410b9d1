"""The audit log's values: no secret ever in the details, bounded text, filter validation."""

from __future__ import annotations

from typing import Any

import pytest

from hub.storage.audit_model import ACTIONS, Actor, AuditEvent, AuditFilter, cli_actor


@pytest.mark.parametrize(
    "details",
    [
        {"password": "x"},
        {"new_password": "x"},
        {"Password": "x"},
        {"token": "iot_abc"},
        {"token_hash": "ab"},
        {"storage_secret": "s"},
        {"changes": {"password_hash": "$argon2id$..."}},
        {"changes": [{"credentials": "x"}]},
    ],
)
def test_details_that_would_hold_a_secret_are_refused(details: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="never holds secrets"):
        AuditEvent(Actor("olga"), "user.update", details=details)


def test_details_about_secrets_are_fine() -> None:
    event = AuditEvent(
        Actor("cli", "root@hub"),
        "user.update",
        target="olga",
        details={"password_changed": True, "sessions_ended": 2, "role": {"from": "a", "to": "b"}},
    )
    assert event.row()[-1]["password_changed"] is True


def test_details_must_be_json() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        AuditEvent(Actor("olga"), "alert.clear", details={"when": object()})


def test_unknown_actions_and_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditEvent(Actor("olga"), "user.delete_everything")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown audit outcome"):
        AuditEvent(Actor("olga"), "auth.login", "maybe")  # type: ignore[arg-type]


def test_row_text_is_bounded_and_nul_free() -> None:
    event = AuditEvent(Actor("o\x00" + "x" * 500, "1.2.3.4\x00"), "auth.login", "failure")
    actor, action, outcome, client, target, details = event.row()
    assert "\x00" not in actor
    assert len(actor) <= 128
    assert client == "1.2.3.4"
    assert (action, outcome, target, details) == ("auth.login", "failure", None, {})
    assert AuditEvent(Actor(""), "auth.login").row()[0] == "?"


def test_the_cli_actor_names_the_os_user_and_host() -> None:
    actor = cli_actor("root", "hub-1")
    assert (actor.name, actor.client) == ("cli", "root@hub-1")


@pytest.mark.parametrize("action", [*ACTIONS, "user.", "auth.", None])
def test_filter_accepts_actions_and_prefixes(action: str | None) -> None:
    assert AuditFilter(action=action).validate().action == action


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "user"}, "unknown action"),
        ({"action": "nothing."}, "unknown action"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": 10, "until": 10}, "before until"),
        ({"outcome": "maybe"}, "unknown outcome"),
    ],
)
def test_filter_refuses_bad_values_with_a_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditFilter(**kwargs).validate()
