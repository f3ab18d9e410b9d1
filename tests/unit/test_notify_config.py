"""The notification file's model: what it accepts, and bad input refused whole naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.notify.config import (
    MASK,
    ConfigError,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
    load_file,
    masked,
    parse_channel,
    parse_config,
    resolve_secret,
    unmask,
)

ISSUE_EXAMPLE = """
channels:
  - {name: ops-webhook, type: webhook, url: "http://127.0.0.1:9999/hook"}
routes:
  - {match: {severity: [critical]}, channels: [ops-webhook]}
"""


def test_the_issues_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_file(path)
    assert [c.name for c in config.channels] == ["ops-webhook"]
    channel = config.channels[0]
    assert isinstance(channel, WebhookChannel)
    assert channel.format == "iot-v1"
    route = config.routes[0]
    assert route.name == "route-1"
    assert route.match.severity == ["critical"]
    assert route.group_window_s == 30
    assert route.repeat_interval_s == 4 * 3600
    assert route.escalate_after_s is None


def test_every_channel_type() -> None:
    config = parse_config(
        {
            "channels": [
                {
                    "name": "am",
                    "type": "webhook",
                    "url": "https://am.example/hook",
                    "format": "alertmanager",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                },
                {"name": "chat", "type": "slack", "url": "https://hooks.slack.example/T/B/x"},
                {"name": "teams", "type": "teams", "url": "https://teams.example/webhook/x"},
                {
                    "name": "mail",
                    "type": "email",
                    "host": "smtp.example",
                    "sender": "hub@x.example",
                    "to": ["ops@x.example"],
                    "username": "hub",
                    "password": "${SMTP_PASSWORD}",
                },
            ],
            "routes": [
                {
                    "name": "night",
                    "match": {"site": ["plant-1"], "rule": ["temp_high"]},
                    "channels": ["chat", "mail", "am"],
                    "escalate_after_s": 900,
                },
            ],
        }
    )
    assert [c.type for c in config.channels] == ["webhook", "slack", "teams", "email"]
    assert config.routes[0].initial_channels() == ["chat"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"channels": [{"name": "a", "type": "webhook", "url": "ftp://x/y"}]}, "channels[0].url"),
        ({"channels": [{"name": "a", "type": "webhook", "url": "not a url"}]}, "channels[0].url"),
        ({"channels": [{"name": "a", "type": "slack", "url": "http://:80/"}]}, "channels[0].url"),
        ({"channels": [{"name": "a", "type": "pager"}]}, "channels[0].type"),
        (
            {"channels": [{"name": "a", "type": "webhook", "url": "http://h/", "colour": 1}]},
            "channels[0].colour",
        ),
        (
            {
                "channels": [
                    {"name": "m", "type": "email", "host": "h", "sender": "nobody", "to": ["a@b"]}
                ]
            },
            "channels[0].sender",
        ),
        (
            {"channels": [{"name": "m", "type": "email", "host": "h", "sender": "a@b", "to": []}]},
            "channels[0].to",
        ),
        ({"routes": [{"channels": ["ghost"]}]}, "routes[0].channels[0]"),
        (
            {"routes": [{"match": {"severity": ["fatal"]}, "channels": ["a"]}]},
            "routes[0].match.severity[0]",
        ),
        ({"routes": [{"match": {"site": []}, "channels": ["a"]}]}, "routes[0].match.site"),
        ({"routes": [{"match": {"colour": ["red"]}, "channels": ["a"]}]}, "routes[0].match.colour"),
        ({"routes": [{"channels": []}]}, "routes[0].channels"),
        ({"routes": [{"channels": ["a", "a"]}]}, "routes[0].channels"),
        ({"routes": [{"channels": ["a"], "group_window_s": -1}]}, "routes[0].group_window_s"),
    ],
)
def test_bad_input_names_the_field(data: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "channels": [{"name": "a", "type": "webhook", "url": "http://127.0.0.1:9/h"}]
    }
    with pytest.raises(ConfigError) as raised:
        parse_config({**base, **data})
    assert str(raised.value).startswith(f"{field}:"), str(raised.value)


def test_duplicate_names_are_refused() -> None:
    hook = {"name": "a", "type": "webhook", "url": "http://h/"}
    with pytest.raises(ConfigError, match=r"^channels\[1\]\.name: 'a' is used twice"):
        parse_config({"channels": [hook, hook]})
    with pytest.raises(ConfigError, match=r"^routes\[1\]\.name: 'r' is used twice"):
        parse_config({"channels": [hook], "routes": [{"name": "r", "channels": ["a"]}] * 2})


def test_a_broken_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.yaml"
    path.write_text("channels: [\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_file(path)
    path.write_text("routes:\n  - {channels: [nowhere]}\n")
    with pytest.raises(ConfigError, match=r"routes\[0\]\.channels\[0\]: unknown channel"):
        load_file(path)


def test_secrets_are_masked_and_kept_on_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    mail = parse_channel(
        {
            "name": "m",
            "type": "email",
            "host": "h",
            "sender": "a@b.c",
            "to": ["d@e.f"],
            "password": "hunter2",
        }
    )
    assert isinstance(mail, EmailChannel)
    shown = masked(mail)
    assert shown["password"] == MASK
    assert "hunter2" not in str(shown)
    again = parse_channel(unmask(shown, mail))
    assert isinstance(again, EmailChannel)
    assert again.password == "hunter2"
    slack = parse_channel(
        {"name": "s", "type": "slack", "url": "https://hooks.example/T1/B2/sekrit"}
    )
    assert isinstance(slack, SlackChannel)
    assert "sekrit" not in str(masked(slack))
    hook = parse_channel(
        {
            "name": "w",
            "type": "webhook",
            "url": "http://h/",
            "headers": {"X-Token": "abc", "X-Env": "${HOOK}"},
        }
    )
    assert masked(hook)["headers"] == {"X-Token": MASK, "X-Env": "${HOOK}"}
    monkeypatch.setenv("HOOK", "from-env")
    assert resolve_secret("${HOOK}") == "from-env"
    monkeypatch.delenv("HOOK")
    with pytest.raises(ConfigError, match="HOOK is not set"):
        resolve_secret("${HOOK}")
