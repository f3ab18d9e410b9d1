"""Why Kafka cannot be reached, in words an operator can act on. aiokafka reports any failed
bootstrap as "Unable to bootstrap from [...]" and logs the cause on its own logger; the cause
(a refused password, a certificate nobody trusts, an expired one) is what tells the operator which
setting to fix. `classify` names it from an exception (pure); `diagnose` opens one connection per
bootstrap address with the same security settings to get that exception."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from iot_common.kafka_security import certificate_expiry

AUTHENTICATION_FAILED: Final = "authentication_failed"
MECHANISM_REFUSED: Final = "sasl_mechanism_refused"
CERTIFICATE_UNTRUSTED: Final = "certificate_untrusted"
CERTIFICATE_EXPIRED: Final = "certificate_expired"
CERTIFICATE_REFUSED: Final = "client_certificate_refused"
HOSTNAME_MISMATCH: Final = "certificate_hostname_mismatch"
TLS_FAILED: Final = "tls_failed"
UNREACHABLE: Final = "unreachable"
CONNECTION_CLOSED: Final = "connection_closed"
TIMEOUT: Final = "timeout"
OTHER: Final = "error"

# Failures that retrying cannot fix: the settings (or the broker's) must change.
CONFIGURATION_FAILURES: Final = frozenset(
    {
        AUTHENTICATION_FAILED,
        MECHANISM_REFUSED,
        CERTIFICATE_UNTRUSTED,
        CERTIFICATE_EXPIRED,
        CERTIFICATE_REFUSED,
        HOSTNAME_MISMATCH,
        TLS_FAILED,
    }
)


@dataclass(frozen=True)
class KafkaFailure:
    kind: str
    detail: str
    hint: str

    @property
    def needs_configuration(self) -> bool:
        return self.kind in CONFIGURATION_FAILURES


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def classify(exc: BaseException, prefix: str) -> KafkaFailure:
    """What went wrong, and which `{prefix}KAFKA_*` setting to look at."""
    detail = _detail(exc)
    s = f"{prefix}KAFKA_"
    text = str(exc).lower()
    if isinstance(exc, SaslAuthenticationFailed | AuthenticationFailedError):
        return KafkaFailure(
            AUTHENTICATION_FAILED,
            detail,
            f"the broker refused the user or password: check {s}SASL_USERNAME, "
            f"{s}SASL_PASSWORD and {s}SASL_MECHANISM",
        )
    if isinstance(exc, UnsupportedSaslMechanismError | IllegalSaslStateError):
        return KafkaFailure(
            MECHANISM_REFUSED,
            detail,
            f"the broker does not take this SASL mechanism here: check {s}SASL_MECHANISM "
            f"and {s}SECURITY_PROTOCOL",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        if "expired" in text:
            return KafkaFailure(
                CERTIFICATE_EXPIRED,
                detail,
                "the broker's certificate has expired: the broker must renew it",
            )
        if "hostname" in text or "ip address mismatch" in text:
            return KafkaFailure(
                HOSTNAME_MISMATCH,
                detail,
                f"the broker's certificate does not name the address in {s}BOOTSTRAP",
            )
        return KafkaFailure(
            CERTIFICATE_UNTRUSTED,
            detail,
            f"the broker's certificate is not signed by a CA in {s}SSL_CAFILE "
            "(or the system's trust store without it)",
        )
    if isinstance(exc, ssl.SSLError):
        if "certificate expired" in text:
            return KafkaFailure(
                CERTIFICATE_EXPIRED,
                detail,
                f"the broker refused the client certificate as expired: renew {s}SSL_CERTFILE",
            )
        if any(alert in text for alert in ("certificate", "handshake failure", "unknown ca")):
            return KafkaFailure(
                CERTIFICATE_REFUSED,
                detail,
                f"the broker refused the client certificate: check {s}SSL_CERTFILE and "
                f"{s}SSL_KEYFILE (signed by a CA the broker trusts, not expired)",
            )
        return KafkaFailure(
            TLS_FAILED,
            detail,
            f"the TLS handshake failed: is {s}BOOTSTRAP a TLS listener "
            f"({s}SECURITY_PROTOCOL SSL or SASL_SSL)?",
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return KafkaFailure(TIMEOUT, detail, f"no answer from {s}BOOTSTRAP in time")
    if isinstance(exc, KafkaConnectionError) and "closed" in text:
        # Taken, then dropped: typically a plaintext client on a TLS listener.
        return KafkaFailure(
            CONNECTION_CLOSED,
            detail,
            f"Kafka closed the connection: does {s}SECURITY_PROTOCOL match this listener "
            "(a TLS listener needs SSL or SASL_SSL)?",
        )
    if isinstance(exc, ConnectionError | OSError | KafkaConnectionError):
        return KafkaFailure(UNREACHABLE, detail, f"is Kafka up at {s}BOOTSTRAP?")
    if isinstance(exc, KafkaError):
        return KafkaFailure(OTHER, detail, "")
    return KafkaFailure(OTHER, detail, "")


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    found = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            found.append((host.strip("[]"), int(port)))
    return found


def _tls_alert(
    host: str, port: int, context: ssl.SSLContext, timeout_s: float
) -> BaseException | None:
    """The TLS error a plain handshake (and the read after it) meets; None if none."""
    try:
        with (
            socket.create_connection((host, port), timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.settimeout(timeout_s)
            tls.recv(1)
    except TimeoutError:
        return None  # the broker took us and waits for a request
    except (ssl.SSLError, OSError) as exc:
        return exc
    return None


def _own_certificate_expired(
    failure: KafkaFailure, certfile: Path | None, prefix: str, now_s: float
) -> KafkaFailure:
    """A refused client certificate that has expired says so (Java brokers only answer
    "certificate unknown")."""
    if failure.kind != CERTIFICATE_REFUSED or certfile is None:
        return failure
    expiry = certificate_expiry(certfile)
    if expiry is None or expiry > now_s:
        return failure
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry))
    return KafkaFailure(
        CERTIFICATE_EXPIRED,
        failure.detail,
        f"{prefix}KAFKA_SSL_CERTFILE expired on {when}: renew it and restart",
    )


async def diagnose(
    bootstrap: str,
    security: dict[str, Any],
    prefix: str,
    timeout_s: float,
    certfile: Path | None = None,
) -> KafkaFailure | None:
    """Connect to each bootstrap address as the client would; the first address's failure,
    classified, or None if one of them takes the connection (then the failure was elsewhere,
    in metadata or a later request)."""
    first: KafkaFailure | None = None
    for host, port in _addresses(bootstrap):
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **security),
                timeout_s,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is what we report
            cause: BaseException = exc
            context = security.get("ssl_context")
            if isinstance(exc, KafkaConnectionError) and context is not None:
                # With TLS 1.3 the broker's verdict on our certificate (an alert) comes after
                # the handshake; aiokafka reports it as a closed connection.
                alert = await asyncio.to_thread(_tls_alert, host, port, context, timeout_s)
                cause = alert or exc
            failure = _own_certificate_expired(
                classify(cause, prefix), certfile, prefix, time.time()
            )
            first = first or failure
            continue
        conn.close()
        return None
    return first
