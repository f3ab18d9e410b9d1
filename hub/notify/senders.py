"""Sending one message on one channel: HTTP POST (webhook, Slack, Teams) with aiohttp, e-mail
with aiosmtplib. Every send is bounded by the channel's timeout and returns a `SendResult`
(never raises for the receiver's failure); a failure's reason never holds a secret (no URL,
header or password is quoted)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import aiohttp
import aiosmtplib

from hub.notify.config import (
    Channel,
    ConfigError,
    EmailChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    resolve_secret,
)
from hub.notify.content import Notice
from hub.notify.formats import (
    alertmanager_body,
    email_body,
    group_key,
    iot_body,
    slack_body,
    teams_body,
)

__all__ = ["ChannelSender", "SendResult", "Sender"]

_BODY_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    detail: str | None = None  # why not (or the receiver's status when delivered)


class Sender(Protocol):
    async def send(
        self, channel: Channel, notices: Sequence[Notice], *, route: str | None
    ) -> SendResult: ...


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class ChannelSender:
    """Sends on every channel type; one aiohttp session for all HTTP channels."""

    def __init__(
        self, *, public_url: str | None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._public_url = public_url
        self._session: aiohttp.ClientSession | None = None
        self._ssl = ssl_context

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "iot-hub-notify/1"},
                connector=aiohttp.TCPConnector(ssl=self._ssl) if self._ssl else None,
            )
        return self._session

    async def send(
        self, channel: Channel, notices: Sequence[Notice], *, route: str | None
    ) -> SendResult:
        try:
            if isinstance(channel, EmailChannel):
                return await self._email(channel, notices)
            return await self._post(channel, notices, route)
        except ConfigError as exc:  # an unset ${ENV} reference
            return SendResult(False, str(exc))

    async def _post(
        self,
        channel: WebhookChannel | SlackChannel | TeamsChannel,
        notices: Sequence[Notice],
        route: str | None,
    ) -> SendResult:
        body: dict[str, Any]
        headers = {"Content-Type": "application/json", "Idempotency-Key": group_key(notices)}
        if isinstance(channel, WebhookChannel):
            if channel.format == "alertmanager":
                body = alertmanager_body(
                    notices, channel=channel.name, route=route, external_url=self._public_url
                )
            else:
                body = iot_body(notices, channel=channel.name, route=route)
            headers.update({k: resolve_secret(v) for k, v in channel.headers.items()})
        elif isinstance(channel, SlackChannel):
            body = slack_body(notices)
        else:
            body = teams_body(notices)
        url = resolve_secret(channel.url)
        try:
            async with self._http().post(
                url,
                data=json.dumps(body, allow_nan=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=channel.timeout_s),
            ) as response:
                text = await response.text(errors="replace")
                if 200 <= response.status < 300:
                    return SendResult(True, f"HTTP {response.status}")
                excerpt = " ".join(text.split())[:_BODY_EXCERPT]
                return SendResult(False, f"HTTP {response.status}: {excerpt}".rstrip(": "))
        except (aiohttp.InvalidURL, ValueError):
            # The exception quotes the URL, which may be the secret (Slack, Teams).
            return SendResult(False, "invalid URL")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult(False, _reason(exc))

    async def _email(self, channel: EmailChannel, notices: Sequence[Notice]) -> SendResult:
        content = email_body(notices)
        message = EmailMessage()
        message["From"] = channel.sender
        message["To"] = ", ".join(channel.to)
        message["Subject"] = content.subject
        message["Date"] = formatdate(usegmt=True)
        # Stable per group of notices: a mail resent after a crash has the same Message-ID.
        message["Message-ID"] = make_msgid(idstring=group_key(notices), domain="iot-hub")
        message["X-Idempotency-Key"] = group_key(notices)
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        context = ssl.create_default_context(cafile=channel.ca_file) if channel.ca_file else None
        password = None if channel.password is None else resolve_secret(channel.password)
        try:
            await aiosmtplib.send(
                message,
                hostname=channel.host,
                port=channel.port,
                username=channel.username,
                password=password,
                use_tls=channel.security == "tls",
                start_tls=channel.security == "starttls",
                tls_context=context,
                timeout=channel.timeout_s,
            )
        except (aiosmtplib.SMTPException, TimeoutError, OSError) as exc:
            return SendResult(False, _reason(exc))
        return SendResult(True, "accepted by SMTP server")
