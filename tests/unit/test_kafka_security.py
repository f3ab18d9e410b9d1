"""Kafka TLS and SASL settings (iot_common/kafka_security.py) and the naming of connection
failures (iot_common/kafka_diagnosis.py): every bad combination or file is refused as the
settings load, with the setting named, and never falls back to plaintext."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import faust
import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from pydantic import ValidationError

from edge_gateway.settings import EdgeSettings
from hub.app import kafka_credentials
from hub.settings import HubSettings
from iot_common import kafka_diagnosis as kd
from tests.support.certs import CertAuthority, Issued
from tests.support.process import run_module


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def client(ca: CertAuthority) -> Issued:
    return ca.issue("gateway", client=True)


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        EdgeSettings(**values)  # type: ignore[arg-type]
    return str(caught.value)


def test_sasl_needs_a_user_and_a_password() -> None:
    message = refusal(kafka_security_protocol="SASL_SSL", kafka_sasl_username="edge")
    assert "EDGE_KAFKA_SASL_PASSWORD is required with EDGE_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in (
        message
    )
    assert "EDGE_KAFKA_SASL_USERNAME is required" in refusal(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_password="secret"
    )


def test_tls_files_or_sasl_credentials_without_the_protocol_are_refused_not_ignored(
    ca: CertAuthority,
) -> None:
    # Forgetting EDGE_KAFKA_SECURITY_PROTOCOL must not silently send in plaintext.
    message = refusal(kafka_ssl_cafile=ca.cert)
    assert "EDGE_KAFKA_SSL_CAFILE is set but EDGE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in message
    message = refusal(kafka_sasl_username="edge", kafka_sasl_password="secret")
    assert "EDGE_KAFKA_SASL_USERNAME is set but" in message
    assert "does not use SASL" in message
    message = refusal(
        kafka_security_protocol="SSL", kafka_sasl_username="edge", kafka_sasl_password="x"
    )
    assert "does not use SASL" in message


def test_a_client_certificate_needs_its_key(client: Issued) -> None:
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_certfile=client.cert)
    assert "EDGE_KAFKA_SSL_KEYFILE is required with EDGE_KAFKA_SSL_CERTFILE" in message
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_keyfile=client.key)
    assert "EDGE_KAFKA_SSL_CERTFILE is required with EDGE_KAFKA_SSL_KEYFILE" in message


def test_missing_and_malformed_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.crt"
    assert f"EDGE_KAFKA_SSL_CAFILE: {missing} does not exist" in refusal(
        kafka_security_protocol="SSL", kafka_ssl_cafile=missing
    )
    garbage = tmp_path / "garbage.crt"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_cafile=garbage)
    assert f"EDGE_KAFKA_SSL_CAFILE: {garbage} holds no usable PEM certificate" in message


def test_a_key_that_does_not_match_its_certificate_is_refused(
    ca: CertAuthority, client: Issued
) -> None:
    other = ca.issue("someone-else", client=True)
    message = refusal(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=client.cert,
        kafka_ssl_keyfile=other.key,
    )
    assert "EDGE_KAFKA_SSL_KEYFILE does not match the certificate of EDGE_KAFKA_SSL_CERTFILE" in (
        message
    )


def test_an_unknown_mechanism_is_refused_by_name() -> None:
    message = refusal(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="GSSAPI",
        kafka_sasl_username="edge",
        kafka_sasl_password="secret",
    )
    assert "kafka_sasl_mechanism" in message
    assert "'SCRAM-SHA-512'" in message


def test_the_cli_refuses_a_bad_setting_with_one_line_and_no_traceback(
    ca: CertAuthority, client: Issued
) -> None:
    other = ca.issue("mismatch", client=True)
    env = {
        **os.environ,
        "EDGE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "EDGE_KAFKA_SSL_CERTFILE": str(client.cert),
        "EDGE_KAFKA_SSL_KEYFILE": str(other.key),
    }
    result = run_module("edge_gateway.cli", "run", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "invalid settings: EDGE_KAFKA_SSL_KEYFILE does not match the certificate of "
        "EDGE_KAFKA_SSL_CERTFILE"
    ]


def test_sasl_ssl_settings_become_aiokafka_arguments_with_verification_on(
    ca: CertAuthority,
) -> None:
    settings = EdgeSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="edge",
        kafka_sasl_password="s3cret",  # type: ignore[arg-type]
        kafka_ssl_cafile=ca.cert,
    )
    options = settings.aiokafka_security()
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "edge",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert dict(settings.describe())["EDGE_KAFKA_SASL_PASSWORD"] == "***"
    assert "s3cret" not in repr(settings)


def test_plaintext_is_the_default_and_carries_no_tls_context() -> None:
    options = EdgeSettings().aiokafka_security()
    assert options == {"security_protocol": "PLAINTEXT", "ssl_context": None}


def test_sasl_plain_without_tls_is_flagged() -> None:
    settings = EdgeSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="edge",
        kafka_sasl_password="secret",  # type: ignore[arg-type]
    )
    assert settings.kafka_sends_password_in_clear


def test_the_hub_takes_the_same_settings_as_faust_credentials(
    ca: CertAuthority, client: Issued
) -> None:
    sasl = HubSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="hub",
        kafka_sasl_password="secret",  # type: ignore[arg-type]
        kafka_ssl_cafile=ca.cert,
    )
    credentials = kafka_credentials(sasl)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert (credentials.username, credentials.password) == ("hub", "secret")
    mtls = HubSettings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=ca.cert,
        kafka_ssl_certfile=client.cert,
        kafka_ssl_keyfile=client.key,
    )
    assert isinstance(kafka_credentials(mtls), faust.SSLCredentials)
    assert kafka_credentials(HubSettings()) is None
    with pytest.raises(ValidationError, match="HUB_KAFKA_SASL_PASSWORD is required"):
        HubSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="hub")


# -- naming the failure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "hint"),  # hint: a setting (EDGE_KAFKA_...) or words
    [
        (
            SaslAuthenticationFailed("invalid credentials"),
            kd.AUTHENTICATION_FAILED,
            "SASL_PASSWORD",
        ),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get issuer"),
            kd.CERTIFICATE_UNTRUSTED,
            "SSL_CAFILE",
        ),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed: certificate has expired"),
            kd.CERTIFICATE_EXPIRED,
            "the broker must renew it",
        ),
        (
            ssl.SSLCertVerificationError(1, "Hostname mismatch, certificate is not valid"),
            kd.HOSTNAME_MISMATCH,
            "BOOTSTRAP",
        ),
        (
            ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"),
            kd.CERTIFICATE_REFUSED,
            "SSL_CERTFILE",
        ),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]"), kd.TLS_FAILED, "SECURITY_PROTOCOL"),
        (
            KafkaConnectionError("Connection at 127.0.0.1:9093 closed"),
            kd.CONNECTION_CLOSED,
            "SECURITY_PROTOCOL",
        ),
        (ConnectionRefusedError(111, "Connection refused"), kd.UNREACHABLE, "BOOTSTRAP"),
    ],
)
def test_failures_are_named_with_the_setting_to_look_at(
    error: BaseException, kind: str, hint: str
) -> None:
    failure = kd.classify(error, "EDGE_")
    assert failure.kind == kind
    assert (hint if " " in hint else f"EDGE_KAFKA_{hint}") in failure.hint
    assert type(error).__name__ in failure.detail


def test_only_what_settings_can_fix_is_a_configuration_failure() -> None:
    assert kd.classify(SaslAuthenticationFailed("x"), "EDGE_").needs_configuration
    assert not kd.classify(ConnectionRefusedError(111, "refused"), "EDGE_").needs_configuration


def test_a_refused_client_certificate_that_has_expired_says_so(ca: CertAuthority) -> None:
    expired = ca.issue("old-gateway", client=True, expired=True)
    refused = kd.classify(ssl.SSLError(1, "sslv3 alert certificate unknown"), "EDGE_")
    assert refused.kind == kd.CERTIFICATE_REFUSED
    named = kd._own_certificate_expired(refused, expired.cert, "EDGE_", now_s=2e9)
    assert named.kind == kd.CERTIFICATE_EXPIRED
    assert named.hint.startswith("EDGE_KAFKA_SSL_CERTFILE expired on ")
    valid = ca.issue("new-gateway", client=True)
    assert kd._own_certificate_expired(refused, valid.cert, "EDGE_", time.time()) == refused
