"""E-mail notifications against a real SMTP server (aiosmtpd, started and stopped here) that
requires STARTTLS and authentication, with a certificate from the test's own CA."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from hub.notify.config import parse_channel
from hub.notify.content import notice_for
from hub.notify.senders import ChannelSender
from hub.storage.model import AlertRow
from tests.support.certs import CertAuthority

pytestmark = pytest.mark.integration

USER, PASSWORD = "hub", "s3cret-mail"


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return CertAuthority(tmp_path / "pki")


@pytest.fixture
def smtp(ca: CertAuthority) -> Iterator[tuple[Mailbox, int]]:
    issued = ca.issue("smtp", ("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def _notice() -> Any:
    row = AlertRow(
        id=9,
        device_id="press-4",
        gateway_id="gw-2",
        rule="pressure_high",
        severity="critical",
        state="active",
        acknowledged=False,
        ack_by=None,
        ack_at=None,
        ack_comment=None,
        metric="pressure_bar",
        value=12.5,
        message="pressure 12.5 bar above 10 (press-4)",
        raised_at=1_767_225_600_000,
        updated_at=1_767_225_600_000,
        cleared_at=None,
        cleared_by=None,
        occurrences=1,
    )
    return notice_for(
        row,
        event="firing",
        idempotency_key="alert-9.firing1.mail",
        site="plant-3",
        device_type="press",
        public_url="https://hub.example",
    )


def _mail(port: int, ca: CertAuthority, **changes: Any) -> Any:
    return parse_channel(
        {
            "name": "mail",
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "sender": "hub@example.com",
            "to": ["ops@example.com", "lead@example.com"],
            "username": USER,
            "password": "${TEST_SMTP_PASSWORD}",
            "ca_file": str(ca.cert),
            "timeout_s": 10,
            **changes,
        }
    )


async def test_mail_goes_over_starttls_with_authentication(
    smtp: tuple[Mailbox, int], ca: CertAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    sender = ChannelSender(public_url=None)
    result = await sender.send(_mail(port, ca), [_notice()], route="crit")
    assert result.delivered, result.detail
    (message,) = mailbox.messages
    assert mailbox.envelopes == [("hub@example.com", ["ops@example.com", "lead@example.com"])]
    assert message["Subject"] == "[FIRING] critical pressure_high on press-4"
    assert message["X-Idempotency-Key"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Where: site plant-3, gateway gw-2, device press-4" in text.get_content()
    assert "Device: https://hub.example/device/press-4" in text.get_content()
    assert "<table>" in html.get_content()
    await sender.close()


async def test_a_wrong_password_or_an_unknown_ca_fails_with_a_reason(
    smtp: tuple[Mailbox, int],
    ca: CertAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox, port = smtp
    sender = ChannelSender(public_url=None)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    wrong = await sender.send(_mail(port, ca), [_notice()], route=None)
    assert not wrong.delivered
    assert wrong.detail is not None
    assert "SMTPAuthenticationError" in wrong.detail
    assert "wrong" not in wrong.detail
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    stranger = CertAuthority(tmp_path / "other", name="other-ca")
    untrusted = await sender.send(_mail(port, stranger), [_notice()], route=None)
    assert not untrusted.delivered
    assert untrusted.detail is not None
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.detail or "SSL" in untrusted.detail
    monkeypatch.delenv("TEST_SMTP_PASSWORD")
    unset = await sender.send(_mail(port, ca), [_notice()], route=None)
    assert unset.detail == "environment variable TEST_SMTP_PASSWORD is not set"
    assert mailbox.messages == []
    await sender.close()
