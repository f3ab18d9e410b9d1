from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_gateway.settings import EdgeSettings
from iot_common.settings_cli import mask_url


def test_defaults_point_at_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGE_MQTT_URL", "EDGE_KAFKA_BOOTSTRAP", "EDGE_MQTT_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = EdgeSettings()
    assert s.embedded_broker
    assert (s.mqtt_port, s.http_port) == (1883, 8081)
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    endpoint = s.mqtt_endpoint()
    assert (endpoint.host, endpoint.port) == ("127.0.0.1", 1883)


def test_environment_overrides_and_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MQTT_URL", "mqtt://dev:s3cret@broker.local:1884")
    monkeypatch.setenv("EDGE_MQTT_PASSWORD", "hunter2")
    monkeypatch.setenv("EDGE_GATEWAY_ID", "gw-7")
    s = EdgeSettings()
    assert not s.embedded_broker
    endpoint = s.mqtt_endpoint()
    assert (endpoint.host, endpoint.port, endpoint.username) == ("broker.local", 1884, "dev")
    assert endpoint.password == "hunter2"  # the explicit setting wins over the URL's
    shown = dict(s.describe())
    assert shown["EDGE_GATEWAY_ID"] == "gw-7"
    assert shown["EDGE_MQTT_URL"] == "mqtt://dev:***@broker.local:1884"
    assert shown["EDGE_MQTT_PASSWORD"] == "***"
    assert "s3cret" not in repr(shown)
    assert "hunter2" not in repr(shown)


def test_settings_are_frozen() -> None:
    s = EdgeSettings()
    with pytest.raises(ValidationError):
        s.site = "other"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EDGE_MQTT_URL", "http://x"),
        ("EDGE_MQTT_PORT", "70000"),
        ("EDGE_SITE", "bad site"),
        ("EDGE_BUFFER_MAX_BYTES", "10"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        EdgeSettings()


def test_mask_url_leaves_passwordless_urls_alone() -> None:
    assert mask_url("mqtt://host:1883") == "mqtt://host:1883"


def test_a_bad_variable_is_named_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from iot_common.settings_cli import load_settings

    monkeypatch.setenv("EDGE_MQTT_PORT", "70000")
    with pytest.raises(SystemExit) as info:
        load_settings(EdgeSettings, "EDGE_")
    assert info.value.code == 2
    assert "invalid setting EDGE_MQTT_PORT:" in capsys.readouterr().err
