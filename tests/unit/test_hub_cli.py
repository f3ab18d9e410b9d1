"""`iot-hub` argument parsing and the Faust app's configuration, without any service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.app import create_app, kafka_brokers
from hub.cli import ThirdPartyLogLimit, build_parser, main, print_settings
from hub.settings import HUB_DLQ_TOPIC, HubSettings
from protocol import topics


@pytest.mark.parametrize(
    "command", [[], ["migrate"], ["worker"], ["rollup"], ["rollup", "rebuild"]]
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: iot-hub" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["user", "add"],
        ["user", "remove"],
        ["user", "list"],
        ["token", "create"],
        ["token", "revoke"],
        ["token", "list"],
    ],
)
def test_user_and_token_commands_have_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: iot-hub {' '.join(command)}" in capsys.readouterr().out


def test_token_expiry_is_parsed() -> None:
    args = build_parser().parse_args(
        ["token", "create", "ci", "--role", "viewer", "--expires-in", "30d"]
    )
    assert args.expires_in == 30 * 86_400
    args = build_parser().parse_args(["token", "create", "ci", "--role", "viewer"])
    assert args.expires_in is None


def test_a_bad_token_expiry_is_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "create", "ci", "--role", "viewer", "--expires-in", "30 days"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--expires-in" in err
    assert "e.g. 30d" in err
    assert "Traceback" not in err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T08:30:00Z", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        ("2026-11-27T09:30:00+01:00", datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
    ],
)
def test_rollup_rebuild_since(text: str, expected: datetime) -> None:
    args = build_parser().parse_args(["rollup", "rebuild", "--since", text])
    assert args.since == expected


def test_rollup_rebuild_takes_a_tier_and_an_end() -> None:
    args = build_parser().parse_args(["rollups", "rebuild", "--since", "2026-11-27"])
    assert (args.tier, args.until) == ("all", None)
    args = build_parser().parse_args(
        ["rollup", "rebuild", "--since", "2026-11-27", "--until", "2026-11-28", "--tier", "1h"]
    )
    assert (args.tier, args.until) == ("1h", datetime(2026, 11, 28, tzinfo=UTC))


def test_rollup_rebuild_rejects_an_unknown_tier(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rollup", "rebuild", "--since", "2026-11-27", "--tier", "1w"])
    assert "invalid choice: '1w'" in capsys.readouterr().err


def test_rollup_rebuild_rejects_a_bad_since(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rollup", "rebuild", "--since", "yesterday"])
    assert "not an ISO 8601" in capsys.readouterr().err


def test_settings_are_printed_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    settings = HubSettings(
        database_url="postgresql://iot:s3cret@db:5432/iot", redis_url="redis://:hush@cache:6379/0"
    )
    print_settings(settings)
    out = capsys.readouterr().out
    assert "HUB_DATABASE_URL=postgresql://iot:***@db:5432/iot" in out
    assert "HUB_REDIS_URL=redis://:***@cache:6379/0" in out
    assert "s3cret" not in out
    assert "hush" not in out


def test_kafka_brokers() -> None:
    assert kafka_brokers("a:9092, b:9093") == ["kafka://a:9092", "kafka://b:9093"]


def test_faust_app_configuration(tmp_path: Path) -> None:
    settings = HubSettings(consumer_group="hub-x", topic_partitions=3, worker_web_port=0)
    app = create_app(settings, datadir=tmp_path)
    assert app.conf.id == "hub-x"
    assert [str(url) for url in app.conf.broker] == ["kafka://127.0.0.1:9092"]
    assert app.conf.topic_partitions == 3
    assert not app.conf.web_enabled
    assert app.conf.stream_wait_empty
    assert app.conf.producer_acks == -1
    ingest = app.agents["ingest"]
    # Concurrency 1: with more actors Faust can commit past an event in flight (issue #606).
    assert ingest.concurrency == 1
    assert ingest.channel.get_topic_name() == topics.TELEMETRY
    assert HUB_DLQ_TOPIC == "iot.hub.dlq"


def test_kafka_session_timeout(tmp_path: Path) -> None:
    app = create_app(HubSettings(kafka_session_timeout_s=15), datadir=tmp_path)
    assert app.conf.broker_session_timeout == 15
    assert app.conf.broker_heartbeat_interval == 3.0
    short = create_app(HubSettings(kafka_session_timeout_s=6), datadir=tmp_path)
    assert short.conf.broker_heartbeat_interval == 2.0
    with pytest.raises(ValueError, match="kafka_session_timeout_s"):
        HubSettings(kafka_session_timeout_s=1)


def test_worker_web_port(tmp_path: Path) -> None:
    app = create_app(HubSettings(worker_web_port=6099), datadir=tmp_path)
    assert app.conf.web_enabled
    assert app.conf.web_port == 6099


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_third_party_logs_are_limited_but_ours_are_not() -> None:
    limit = ThirdPartyLogLimit(max_chars=50)
    assert limit.filter(_record("aiokafka.conn", "connect to %s failed", "a"))
    assert not limit.filter(_record("aiokafka.conn", "connect to %s failed", "b"))
    assert limit.filter(_record("hub.agents.ingest", "db_write_failed"))
    assert limit.filter(_record("hub.agents.ingest", "db_write_failed"))
    assert limit.filter(_record("model", "not a mode logger"))
    assert limit.filter(_record("model", "not a mode logger"))
    long = _record("faust.transport.consumer", "waiting for %r", list(range(1000)))
    assert limit.filter(long)
    assert long.getMessage().endswith("chars)")
    assert len(long.getMessage()) < 80
