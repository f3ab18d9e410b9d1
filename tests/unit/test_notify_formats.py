"""What each channel type sends: our versioned webhook body, Alertmanager's, Slack, Teams, mail."""

from __future__ import annotations

from hub.notify.content import Notice, notice_for, utc_text
from hub.notify.formats import (
    WEBHOOK_VERSION,
    alertmanager_body,
    email_body,
    group_key,
    iot_body,
    slack_body,
    teams_body,
)
from hub.storage.model import AlertRow

RAISED = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _row(**changes: object) -> AlertRow:
    fields: dict[str, object] = {
        "id": 42,
        "device_id": "pump/7",
        "gateway_id": "gw-1",
        "rule": "temp_high",
        "severity": "critical",
        "state": "active",
        "acknowledged": False,
        "ack_by": None,
        "ack_at": None,
        "ack_comment": None,
        "metric": "temperature",
        "value": 93.5,
        "message": "temperature 93.5 above 90 (pump/7)",
        "raised_at": RAISED,
        "updated_at": RAISED,
        "cleared_at": None,
        "cleared_by": None,
        "occurrences": 1,
    }
    fields.update(changes)
    return AlertRow(**fields)  # type: ignore[arg-type]


def _notice(event: str = "firing", key: str = "k1", **changes: object) -> Notice:
    return notice_for(
        _row(**changes),
        event=event,  # type: ignore[arg-type]
        idempotency_key=key,
        site="plant-1",
        device_type="pump",
        public_url="https://hub.example/",
    )


def test_a_notice_says_what_where_how_bad_since_when_and_links() -> None:
    n = _notice()
    facts = dict(n.facts())
    assert facts["What"] == "temperature 93.5 above 90 (pump/7)"
    assert facts["Where"] == "site plant-1, gateway gw-1, device pump/7"
    assert facts["Severity"] == "critical"
    assert facts["Since"] == "2026-01-01T00:00:00.000Z"
    assert facts["Value"] == "93.5"
    assert n.device_url == "https://hub.example/device/pump%2F7"
    assert n.alert_url == "https://hub.example/alerts?status=all&device_id=pump%2F7#alert-42"
    assert (
        notice_for(
            _row(),
            event="firing",
            idempotency_key="k",
            site=None,
            device_type=None,
            public_url=None,
        ).alert_url
        is None
    )


def test_iot_webhook_body_is_versioned_and_keyed() -> None:
    notices = [
        _notice(key="k1"),
        _notice("resolved", key="k2", state="cleared", cleared_at=RAISED + 60_000),
    ]
    body = iot_body(notices, channel="ops", route="crit")
    assert body["version"] == WEBHOOK_VERSION
    assert body["status"] == "firing"
    assert [n["idempotency_key"] for n in body["notifications"]] == ["k1", "k2"]
    assert body["idempotency_key"] == group_key(list(reversed(notices)))  # order-free
    assert body["idempotency_key"] != group_key(notices[:1])
    alert = body["notifications"][1]["alert"]
    assert alert["cleared_at"] == "2026-01-01T00:01:00.000Z"
    assert alert["site"] == "plant-1"
    assert alert["device_type"] == "pump"
    assert body["notifications"][0]["links"]["device"] == "https://hub.example/device/pump%2F7"
    assert iot_body(notices[1:], channel="ops", route=None)["status"] == "resolved"


def test_alertmanager_body_has_its_shape() -> None:
    firing, resolved = (
        _notice(key="k1"),
        _notice("resolved", key="k2", id=43, state="cleared", cleared_at=RAISED + 5000),
    )
    body = alertmanager_body(
        [firing, resolved], channel="am", route="crit", external_url="https://hub.example"
    )
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["version"] == "4"
    assert body["receiver"] == "am"
    assert body["status"] == "firing"
    first, second = body["alerts"]
    assert first["status"] == "firing"
    assert second["status"] == "resolved"
    assert first["labels"] == {
        "alertname": "temp_high",
        "severity": "critical",
        "device": "pump/7",
        "gateway": "gw-1",
        "site": "plant-1",
        "device_type": "pump",
        "metric": "temperature",
    }
    assert first["startsAt"] == "2026-01-01T00:00:00.000Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert second["endsAt"] == utc_text(RAISED + 5000)
    assert first["fingerprint"] != second["fingerprint"]
    assert first["annotations"]["idempotency_key"] == "k1"
    assert body["commonLabels"]["alertname"] == "temp_high"
    assert "idempotency_key" not in body["commonAnnotations"]


def test_slack_and_teams_bodies() -> None:
    notices = [_notice(key="k1"), _notice("escalation", key="k2", id=7, device_id="fan-2")]
    slack = slack_body(notices)
    assert slack["text"] == "2 alert notifications (2 firing, 0 resolved)"
    assert [a["title"] for a in slack["attachments"]] == [
        "[FIRING] critical temp_high on pump/7",
        "[ESCALATED] critical temp_high on fan-2",
    ]
    assert slack["attachments"][0]["title_link"].endswith("#alert-42")
    teams = teams_body(notices[:1])
    assert teams["@type"] == "MessageCard"
    assert teams["summary"] == "[FIRING] critical temp_high on pump/7"
    facts = {f["name"]: f["value"] for f in teams["sections"][0]["facts"]}
    assert facts["Where"] == "site plant-1, gateway gw-1, device pump/7"
    assert {a["name"] for a in teams["potentialAction"]} == {"Open alert", "Open device"}


def test_email_has_text_and_escaped_html() -> None:
    body = email_body([_notice(message="<b>hot</b> & bothered")])
    assert body.subject == "[FIRING] critical temp_high on pump/7"
    assert "What: <b>hot</b> & bothered" in body.text
    assert "Device: https://hub.example/device/pump%2F7" in body.text
    assert "&lt;b&gt;hot&lt;/b&gt; &amp; bothered" in body.html
    assert "<b>hot</b>" not in body.html
    assert "href='https://hub.example/device/pump%2F7'" in body.html
