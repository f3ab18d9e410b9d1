"""MQTT security at start-up and at connect: who gets in (connect_refusal), and every bad
certificate, key, password or ACL file refused with one line naming the setting, exit code 2."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from edge_gateway.broker import hash_password
from edge_gateway.broker_auth import (
    ConnectPolicy,
    InternalCredential,
    RefusalLog,
    connect_refusal,
    parse_password_file,
)
from edge_gateway.mqtt_acl import parse_acl
from edge_gateway.mqtt_security import anonymous_beyond_loopback, load_mqtt_security
from edge_gateway.mqtt_tls import SettingError, client_context, server_context
from edge_gateway.settings import EdgeSettings, MqttEndpoint
from tests.support.certs import CertAuthority, Issued
from tests.support.process import run_module

INTERNAL = InternalCredential.generate()
USERS = {"press-01": hash_password("device-secret")}


def policy(**overrides: object) -> ConnectPolicy:
    values: dict[str, object] = {
        "internal": INTERNAL,
        "allow_anonymous": False,
        "users": USERS,
        "acl": None,
        "reserved_client_ids": frozenset({"bridge-gw"}),
    }
    values.update(overrides)
    return ConnectPolicy(**values)  # type: ignore[arg-type]


def refusal(p: ConnectPolicy, **client: object) -> tuple[str | None, bool]:
    values: dict[str, object] = {
        "username": None,
        "password": None,
        "client_id": "c1",
        "will_topic": None,
    }
    values.update(client)
    return connect_refusal(p, **values)  # type: ignore[arg-type]


def test_anonymous_clients_are_refused_by_default() -> None:
    assert refusal(policy()) == ("anonymous", False)
    assert refusal(policy(users=None)) == ("anonymous", False)
    assert refusal(policy(allow_anonymous=True)) == (None, True)


def test_passwords_are_checked() -> None:
    assert refusal(policy(), username="press-01", password="device-secret") == (None, False)
    assert refusal(policy(), username="press-01", password="guess") == ("bad_credentials", False)
    assert refusal(policy(), username="nobody", password="x") == ("bad_credentials", False)
    # Without a password file a user name cannot be checked: refused unless anonymous is on,
    # and then it counts as anonymous (no one's ACL grants for an unchecked name).
    assert refusal(policy(users=None), username="press-01", password="x") == (
        "no_password_file",
        False,
    )
    assert refusal(policy(users=None, allow_anonymous=True), username="press-01") == (None, True)


def test_the_internal_credential_and_the_reserved_client_id() -> None:
    internal = {"username": INTERNAL.username, "password": INTERNAL.password}
    assert refusal(policy(), client_id="bridge-gw", **internal) == (None, False)
    assert refusal(policy(), username=INTERNAL.username, password="wrong") == (
        "bad_credentials",
        False,
    )
    # A device may not take the bridge's session (and with it every reading) over.
    assert refusal(
        policy(), client_id="bridge-gw", username="press-01", password="device-secret"
    ) == ("reserved_client_id", False)
    assert INTERNAL.password not in repr(INTERNAL)
    assert InternalCredential.generate() != INTERNAL


def test_the_will_topic_needs_write_access() -> None:
    acl = parse_acl("pattern write plant/+/%u/#\n")
    device = {"username": "press-01", "password": "device-secret"}
    own = "plant/site-1/press-01/status"
    other = "plant/site-1/press-02/status"
    assert refusal(policy(acl=acl), will_topic=own, **device) == (None, False)
    assert refusal(policy(acl=acl), will_topic=other, **device) == ("will_topic_denied", False)


def test_refusals_are_counted_always_and_logged_throttled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counted: list[str] = []
    now = [0.0]
    refusals = RefusalLog(counted.append, clock=lambda: now[0])
    for _ in range(5):
        refusals.refused("publish", "dev-1", topic="plant/x/y/telemetry")
    now[0] = 60.0
    refusals.refused("publish", "dev-1", topic="plant/x/y/telemetry")
    assert counted == ["publish"] * 6
    lines = [r for r in caplog.records if r.getMessage() == "mqtt_publish_refused"]
    assert len(lines) == 2
    assert lines[1].__dict__["suppressed"] == 4


def test_password_file_lines() -> None:
    hashed = hash_password("x")
    assert parse_password_file(f"# users\n\na:{hashed}\n") == {"a": hashed}
    with pytest.raises(ValueError, match="line 2: expected user:hash"):
        parse_password_file(f"a:{hashed}\nbroken\n")
    with pytest.raises(ValueError, match="line 1: the hash of 'a' is not argon2"):
        parse_password_file("a:plaintext\n")


def test_mqtts_urls() -> None:
    endpoint = MqttEndpoint("mqtts://gw%40site:p%3Ass@broker.example:18883")
    assert (endpoint.tls, endpoint.host, endpoint.port) == (True, "broker.example", 18883)
    assert (endpoint.username, endpoint.password) == ("gw@site", "p:ss")
    assert endpoint.url == "mqtts://broker.example:18883"
    assert MqttEndpoint("mqtts://broker").port == 8883
    assert not MqttEndpoint("mqtt://broker").tls


# -- files -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertAuthority, Issued, Issued]:
    ca = CertAuthority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("server"), ca.issue("device-1", client=True)


def test_server_context_requires_client_certificates_with_a_ca(
    pki: tuple[CertAuthority, Issued, Issued],
) -> None:
    ca, server, _ = pki
    assert server_context(server.cert, server.key, None).verify_mode == ssl.CERT_NONE
    assert server_context(server.cert, server.key, ca.cert).verify_mode == ssl.CERT_REQUIRED


def test_client_context_verifies_the_broker(pki: tuple[CertAuthority, Issued, Issued]) -> None:
    ca, _, device = pki
    context = client_context(ca.cert, device.cert, device.key)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert client_context(None, None, None).verify_mode == ssl.CERT_REQUIRED


@pytest.fixture
def bad_files(pki: tuple[CertAuthority, Issued, Issued], tmp_path: Path) -> dict[str, Path]:
    ca, server, device = pki
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    acl = tmp_path / "acl"
    acl.write_text("user press-01\ntopic write plant/+/press-01/#\ntopc write plant/#\n")
    return {
        "ca": ca.cert,
        "cert": server.cert,
        "key": server.key,
        "other_key": device.key,
        "garbage": garbage,
        "missing": tmp_path / "missing.pem",
        "acl": acl,
    }


BAD_CASES = [
    (
        {"MQTT_TLS_PORT": "8883", "MQTT_TLS_CERTFILE": "garbage", "MQTT_TLS_KEYFILE": "key"},
        "EDGE_MQTT_TLS_CERTFILE",
        "holds no PEM certificate",
    ),
    (
        {"MQTT_TLS_PORT": "8883", "MQTT_TLS_CERTFILE": "cert", "MQTT_TLS_KEYFILE": "other_key"},
        "EDGE_MQTT_TLS_KEYFILE",
        "does not match the certificate in EDGE_MQTT_TLS_CERTFILE",
    ),
    (
        {"MQTT_TLS_PORT": "8883", "MQTT_TLS_CERTFILE": "cert", "MQTT_TLS_KEYFILE": "garbage"},
        "EDGE_MQTT_TLS_KEYFILE",
        "is not an unencrypted PEM private key",
    ),
    (
        {"MQTT_TLS_PORT": "8883", "MQTT_TLS_CERTFILE": "missing", "MQTT_TLS_KEYFILE": "key"},
        "EDGE_MQTT_TLS_CERTFILE",
        "does not exist",
    ),
    (
        {"MQTT_TLS_PORT": "8883", "MQTT_TLS_KEYFILE": "key"},
        "EDGE_MQTT_TLS_CERTFILE",
        "required with EDGE_MQTT_TLS_PORT",
    ),
    (
        {
            "MQTT_TLS_PORT": "8883",
            "MQTT_TLS_CERTFILE": "cert",
            "MQTT_TLS_KEYFILE": "key",
            "MQTT_TLS_CAFILE": "garbage",
        },
        "EDGE_MQTT_TLS_CAFILE",
        "holds no PEM certificate",
    ),
    ({"MQTT_TLS_CERTFILE": "cert"}, "EDGE_MQTT_TLS_CERTFILE", "needs EDGE_MQTT_TLS_PORT"),
    ({"MQTT_ACL_FILE": "acl"}, "EDGE_MQTT_ACL_FILE", "line 3: unknown keyword"),
    ({"MQTT_ACL_FILE": "missing"}, "EDGE_MQTT_ACL_FILE", "does not exist"),
    ({"MQTT_PASSWORD_FILE": "garbage"}, "EDGE_MQTT_PASSWORD_FILE", "line 1: expected user:hash"),
    (
        {"MQTT_URL": "mqtts://broker:8883", "MQTT_CAFILE": "garbage"},
        "EDGE_MQTT_CAFILE",
        "holds no PEM certificate",
    ),
    (
        {"MQTT_URL": "mqtts://broker:8883", "MQTT_CAFILE": "ca", "MQTT_CERTFILE": "cert"},
        "EDGE_MQTT_KEYFILE",
        "required with EDGE_MQTT_CERTFILE",
    ),
    ({"MQTT_URL": "mqtt://broker", "MQTT_CAFILE": "ca"}, "EDGE_MQTT_CAFILE", "needs an mqtts://"),
    ({"MQTT_CAFILE": "ca"}, "EDGE_MQTT_CAFILE", "applies to an mqtts:// EDGE_MQTT_URL only"),
    (
        {"MQTT_URL": "mqtt://broker", "MQTT_ACL_FILE": "acl"},
        "EDGE_MQTT_ACL_FILE",
        "applies to the embedded broker only",
    ),
]


def _env(case: dict[str, str], files: dict[str, Path]) -> dict[str, str]:
    return {
        f"EDGE_{name}": str(files[value]) if value in files else value
        for name, value in case.items()
    }


@pytest.mark.parametrize(("case", "setting", "problem"), BAD_CASES)
def test_bad_files_are_refused_naming_the_setting(
    case: dict[str, str],
    setting: str,
    problem: str,
    bad_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _env(case, bad_files).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as caught:
        load_mqtt_security(EdgeSettings())
    assert caught.value.setting == setting
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("case", "setting", "problem"),
    [BAD_CASES[1], BAD_CASES[7]],
    ids=["key-mismatch", "acl-syntax"],
)
def test_iot_edge_run_exits_2_with_one_line(
    case: dict[str, str], setting: str, problem: str, bad_files: dict[str, Path]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env |= _env(case, bad_files) | {"EDGE_HTTP_PORT": "0", "EDGE_MQTT_PORT": "1"}
    result = run_module("edge_gateway.cli", "run", env=env)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"invalid setting {setting}: ")
    assert problem in line
    assert "Traceback" not in result.stderr + result.stdout
    assert "broker_started" not in result.stderr


def test_good_files_load(
    pki: tuple[CertAuthority, Issued, Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, server, _ = pki
    monkeypatch.setenv("EDGE_MQTT_TLS_PORT", "8883")
    monkeypatch.setenv("EDGE_MQTT_TLS_CERTFILE", str(server.cert))
    monkeypatch.setenv("EDGE_MQTT_TLS_KEYFILE", str(server.key))
    monkeypatch.setenv("EDGE_MQTT_TLS_CAFILE", str(ca.cert))
    settings = EdgeSettings()
    security = load_mqtt_security(settings)
    assert security.tls_listener is not None
    assert security.tls_listener.client_certificates
    assert security.client_tls is None
    # The gateway's own clients use the internal credential on the embedded broker.
    endpoint = security.gateway_endpoint(settings)
    assert endpoint.username == security.policy.internal.username
    assert settings.bridge_client_id in security.policy.reserved_client_ids


@pytest.mark.parametrize(
    ("env", "exposed"),
    [
        ({}, []),
        ({"EDGE_MQTT_ALLOW_ANONYMOUS": "true"}, ["0.0.0.0:1883"]),
        ({"EDGE_MQTT_ALLOW_ANONYMOUS": "true", "EDGE_MQTT_BIND": "127.0.0.1"}, []),
        ({"EDGE_MQTT_ALLOW_ANONYMOUS": "true", "EDGE_MQTT_BIND": "::1"}, []),
        (
            {
                "EDGE_MQTT_ALLOW_ANONYMOUS": "true",
                "EDGE_MQTT_BIND": "127.0.0.1",
                "EDGE_MQTT_TLS_PORT": "8883",
                "EDGE_MQTT_TLS_BIND": "10.0.0.5",
            },
            ["10.0.0.5:8883"],
        ),
        ({"EDGE_MQTT_ALLOW_ANONYMOUS": "true", "EDGE_MQTT_URL": "mqtt://broker"}, []),
    ],
)
def test_anonymous_access_beyond_loopback(
    env: dict[str, str], exposed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert anonymous_beyond_loopback(EdgeSettings()) == exposed
