"""`iot-edge simulate` argument handling and the runner's configuration. No services."""

from __future__ import annotations

import argparse
import io

import pytest

from edge_gateway.simulators import ALL_TYPES, SimulatorConfig, SimulatorStats
from edge_gateway.simulators.cli import (
    add_parser,
    config_from_args,
    format_progress,
    parse_mqtt_url,
    print_settings,
    run_command,
)
from edge_gateway.simulators.runner import SimulatorRunner


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="iot-edge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_defaults() -> None:
    args = parse("simulate")
    assert args.func is run_command
    config = config_from_args(args)
    assert config == SimulatorConfig()
    assert (config.host, config.port, config.site, config.types) == (
        "127.0.0.1",
        1883,
        "site-1",
        ALL_TYPES,
    )
    assert (config.count_per_type, config.rate_hz, config.seed, config.qos) == (1, 1.0, 42, 1)
    assert config.anomaly_probability == 0.001
    assert config.max_messages_per_device is None


def test_every_option() -> None:
    args = parse(
        "simulate",
        "--mqtt-url",
        "mqtt://sim:p%40ss@broker.local:1884",
        "--site",
        "plant-7",
        "--types",
        "cnc_spindle,conveyor",
        "--count-per-type",
        "3",
        "--rate",
        "2.5",
        "--seed",
        "7",
        "--anomaly-probability",
        "0",
        "--max-messages",
        "10",
        "--quiet",
    )
    assert args.quiet
    config = config_from_args(args)
    assert config == SimulatorConfig(
        host="broker.local",
        port=1884,
        username="sim",
        password="p@ss",
        site="plant-7",
        types=("cnc_spindle", "conveyor"),
        count_per_type=3,
        rate_hz=2.5,
        seed=7,
        anomaly_probability=0.0,
        max_messages_per_device=10,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--types", "cnc_spindle,lathe"], "unknown simulator type(s): lathe"),
        (["--rate", "0"], "must be > 0"),
        (["--anomaly-probability", "2"], "between 0 and 1"),
        (["--max-messages", "0"], "must be >= 1"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse("simulate", *argv)
    assert message in capsys.readouterr().err


def test_unknown_types_error_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("simulate", "--types", "oven")
    err = capsys.readouterr().err
    for name in ALL_TYPES:
        assert name in err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", ("127.0.0.1", 1883, None, None)),
        ("mqtt://broker", ("broker", 1883, None, None)),
        ("mqtt://user@broker:1884", ("broker", 1884, "user", None)),
        ("mqtt://user:secret@broker:1884", ("broker", 1884, "user", "secret")),
        ("mqtts://broker", ("broker", 8883, None, None)),
        ("mqtts://device:pw@broker:18883", ("broker", 18883, "device", "pw")),
        # The gateway's aliases (EDGE_MQTT_URL): one parser for both.
        ("tcp://broker", ("broker", 1883, None, None)),
        ("ssl://broker", ("broker", 8883, None, None)),
        ("mqtt://us%40er:p%3Ass@broker", ("broker", 1883, "us@er", "p:ss")),
    ],
)
def test_parse_mqtt_url(url: str, expected: tuple[str, int, str | None, str | None]) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker", "must start with mqtt://"),
        ("mqtt://:1883", "no host"),
        ("mqtt://broker:99999", "out of range"),
    ],
)
def test_bad_mqtt_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mqtt_url(url)


def test_a_bad_url_ends_the_command_with_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(parse("simulate", "--mqtt-url", "http://x")) == 2
    assert "must start with mqtt://" in capsys.readouterr().err


def test_settings_banner_masks_the_password() -> None:
    config = config_from_args(parse("simulate", "--mqtt-url", "mqtt://sim:hunter2@broker:1884"))
    out = io.StringIO()
    print_settings(config, out)
    text = out.getvalue()
    assert "hunter2" not in text
    assert "mqtt_url = mqtt://sim:****@broker:1884" in text
    assert "devices = 5" in text
    assert "rate_hz = 1.0" in text
    assert "hunter2" not in repr(config.describe())


def test_progress_line() -> None:
    stats = SimulatorStats(published=10, acked=9, anomalies=1, connected=4, devices=5)
    assert format_progress(stats) == ("published=10 acked=9 anomalies=1 connected=4/5 dropped=0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"qos": 2}, "qos"),
        ({"max_messages_per_device": 0}, "max_messages_per_device"),
        ({"types": ("lathe",)}, "unknown device type"),
        ({"site": "a/b"}, "site"),
        ({"rate_hz": -1.0}, "rate_hz"),
        ({"max_concurrent_connects": 0}, "max_concurrent_connects"),
        ({"reconnect_min_s": 0.0}, "reconnect"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_runner_builds_one_device_per_id_with_its_topics() -> None:
    runner = SimulatorRunner(SimulatorConfig(site="plant-7", count_per_type=2))
    assert runner.stats.devices == 10
    assert sorted(runner.devices) == sorted(
        f"{prefix}-0{n}"
        for prefix in ("cnc", "press", "conveyor", "compressor", "cleanroom")
        for n in (1, 2)
    )
    assert runner.devices["press-02"].device_type == "hydraulic_press"
    assert not runner.is_connected("press-02")
