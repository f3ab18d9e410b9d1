"""How the edge and the hub reach Kafka across a real network: TLS (with a client certificate for
mutual TLS) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). One set of fields, shared by both
settings classes (`EDGE_KAFKA_*`, `HUB_KAFKA_*`), checked as the settings load so that a bad
combination or a bad file stops the start with a line naming the setting, and never falls back
to plaintext. Standard library and pydantic only: the hub install uses it too."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


class KafkaSecurityError(ValueError):
    """A Kafka security setting that cannot work; the message names it."""


class KafkaSecurityFields(BaseModel):
    """Mixed into EdgeSettings and HubSettings (their env_prefix names the variables)."""

    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    # SCRAM-SHA-512: what AWS MSK and Strimzi's SCRAM users speak; PLAIN for Confluent Cloud.
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = Field(default=None, min_length=1)
    kafka_sasl_password: SecretStr | None = None
    # No CA file: the system's trust store (a public CA, as managed clusters use).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Off only for a broker whose certificate does not name the address used for it.
    kafka_ssl_check_hostname: bool = True

    def _setting(self, field: str) -> str:
        return f"{self.model_config.get('env_prefix', '')}{field.upper()}"

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Self:
        self.kafka_ssl_context()  # files readable, the key matching its certificate
        protocol = self.kafka_security_protocol
        chosen = f"{self._setting('kafka_security_protocol')}={protocol}"
        if protocol not in TLS_PROTOCOLS:
            tls_files = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
            for field in tls_files:
                if getattr(self, field) is not None:
                    raise KafkaSecurityError(
                        f"{self._setting(field)} is set but {chosen} does not use TLS "
                        "(set SSL or SASL_SSL, or unset the file)"
                    )
        sasl_fields = ("kafka_sasl_username", "kafka_sasl_password")
        if protocol in SASL_PROTOCOLS:
            for field in sasl_fields:
                if getattr(self, field) is None:
                    raise KafkaSecurityError(f"{self._setting(field)} is required with {chosen}")
        else:
            for field in sasl_fields:
                if getattr(self, field) is not None:
                    raise KafkaSecurityError(
                        f"{self._setting(field)} is set but {chosen} does not use SASL "
                        "(set SASL_SSL or SASL_PLAINTEXT, or unset it)"
                    )
        return self

    @property
    def kafka_sends_password_in_clear(self) -> bool:
        """SASL PLAIN without TLS: the password crosses the network as it is."""
        return (
            self.kafka_security_protocol == "SASL_PLAINTEXT"
            and self.kafka_sasl_mechanism == "PLAIN"
        )

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """A fresh TLS context from the files (read again at each call, so renewed certificates
        are picked up on the next connection); None without TLS."""
        if self.kafka_security_protocol not in TLS_PROTOCOLS:
            return None
        cafile, certfile, keyfile = (
            self.kafka_ssl_cafile,
            self.kafka_ssl_certfile,
            self.kafka_ssl_keyfile,
        )
        if (certfile is None) != (keyfile is None):
            given, missing = (
                ("kafka_ssl_certfile", "kafka_ssl_keyfile")
                if keyfile is None
                else ("kafka_ssl_keyfile", "kafka_ssl_certfile")
            )
            raise KafkaSecurityError(
                f"{self._setting(missing)} is required with {self._setting(given)} "
                "(a client certificate needs its key)"
            )
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = self.kafka_ssl_check_hostname
        if cafile is not None:
            _readable(cafile, self._setting("kafka_ssl_cafile"))
            try:
                context.load_verify_locations(cafile=str(cafile))
            except (ssl.SSLError, ValueError) as exc:
                raise KafkaSecurityError(
                    f"{self._setting('kafka_ssl_cafile')}: {cafile} holds no usable PEM "
                    f"certificate ({_reason(exc)})"
                ) from None
        if certfile is not None and keyfile is not None:
            _readable(certfile, self._setting("kafka_ssl_certfile"))
            _readable(keyfile, self._setting("kafka_ssl_keyfile"))
            try:
                context.load_cert_chain(str(certfile), str(keyfile))
            except ssl.SSLError as exc:
                raise KafkaSecurityError(_cert_chain_problem(self, exc)) from None
        return context

    def aiokafka_security(self) -> dict[str, Any]:
        """The security arguments of aiokafka's producers, consumers and clients."""
        options: dict[str, Any] = {
            "security_protocol": self.kafka_security_protocol,
            "ssl_context": self.kafka_ssl_context(),
        }
        if self.kafka_security_protocol in SASL_PROTOCOLS:
            assert self.kafka_sasl_password is not None  # the validator made sure
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        return options


def certificate_expiry(path: Path) -> float | None:
    """When the (first) certificate of a PEM file expires, in epoch seconds; None if that
    cannot be read. The standard library decodes certificates only through this helper of
    its own tests, hence the guard."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    try:
        not_after = decode(str(path))["notAfter"]
        return float(ssl.cert_time_to_seconds(not_after))
    except (OSError, ssl.SSLError, KeyError, ValueError):
        return None


def _readable(path: Path, setting: str) -> None:
    if not path.is_file():
        raise KafkaSecurityError(f"{setting}: {path} does not exist or is not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise KafkaSecurityError(f"{setting}: {path} cannot be read ({exc.strerror})") from None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).strip() or type(exc).__name__


def _cert_chain_problem(fields: KafkaSecurityFields, exc: ssl.SSLError) -> str:
    cert, key = fields._setting("kafka_ssl_certfile"), fields._setting("kafka_ssl_keyfile")
    reason = _reason(exc)
    if "KEY_VALUES_MISMATCH" in reason.upper():
        return f"{key} does not match the certificate of {cert}"
    if "PEM" in reason.upper() and "KEY" in reason.upper():
        return f"{key}: no usable PEM private key ({reason})"
    return f"{cert} / {key}: not a usable PEM certificate and key ({reason})"
