"""Notification channels and routes: the model that validates `HUB_NOTIFICATIONS_FILE` and every
API edit alike. Pure: no I/O but `load_file`.

A configuration is accepted whole or refused whole with a message naming the field at fault
(`channels[1].url: ...`, `routes[0].channels: unknown channel 'pager'`).

Secrets (an SMTP password, a header carrying a token, a Slack or Teams URL, which is itself the
credential) may be written inline or as `${ENV_NAME}`, resolved from the environment only when a
message is sent (`resolve_secret`); `masked` shows a channel with every inline secret hidden.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from hub.storage.model import Severity

__all__ = [
    "DEFAULT_GROUP_WINDOW_S",
    "DEFAULT_REPEAT_INTERVAL_S",
    "Channel",
    "ConfigError",
    "EmailChannel",
    "NotificationConfig",
    "Route",
    "RouteMatch",
    "SlackChannel",
    "TeamsChannel",
    "WebhookChannel",
    "load_file",
    "masked",
    "parse_channel",
    "parse_config",
    "parse_route",
    "resolve_secret",
]

DEFAULT_GROUP_WINDOW_S: Final = 30.0
DEFAULT_REPEAT_INTERVAL_S: Final = 4 * 3600.0
SEVERITIES: Final[tuple[Severity, ...]] = ("warning", "critical")
MASK: Final = "********"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class ConfigError(ValueError):
    """A configuration refused whole; the message names the field."""


def resolve_secret(value: str) -> str:
    """`${NAME}` from the environment (ConfigError if unset), anything else as written."""
    match = _ENV_REF.match(value)
    if match is None:
        return value
    resolved = os.environ.get(match.group(1))
    if resolved is None:
        raise ConfigError(f"environment variable {match.group(1)} is not set")
    return resolved


def _check_url(value: str) -> str:
    if _ENV_REF.match(value):
        return value  # checked when resolved, at send time
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {value!r}")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError as exc:
        raise ValueError(f"bad port in URL {value!r}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ChannelBase(_Strict):
    name: str = Field(pattern=_NAME)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class _UrlChannel(_ChannelBase):
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class WebhookChannel(_UrlChannel):
    """JSON over HTTP POST: our versioned body (`iot-v1`) or Alertmanager's (`alertmanager`)."""

    type: Literal["webhook"]
    format: Literal["iot-v1", "alertmanager"] = "iot-v1"
    # E.g. {"Authorization": "Bearer ${OPS_HOOK_TOKEN}"}; values are secrets.
    headers: dict[str, str] = Field(default_factory=dict)


class SlackChannel(_UrlChannel):
    """A Slack (or Mattermost, Rocket.Chat) incoming webhook; the URL is the secret."""

    type: Literal["slack"]


class TeamsChannel(_UrlChannel):
    """A Microsoft Teams incoming webhook (Workflows), MessageCard body; the URL is the secret."""

    type: Literal["teams"]


class EmailChannel(_ChannelBase):
    """E-mail over SMTP: STARTTLS (default) or implicit TLS, optional authentication."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str
    to: list[str] = Field(min_length=1)
    # A PEM file of the CA that signed the server's certificate (default: the system's).
    ca_file: str | None = None

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value


Channel = Annotated[
    WebhookChannel | SlackChannel | TeamsChannel | EmailChannel, Field(discriminator="type")
]
_CHANNEL: Final[TypeAdapter[Channel]] = TypeAdapter(Channel)


class RouteMatch(_Strict):
    """Every key given must match (AND); a key lists the values it accepts (OR); no key: all."""

    severity: list[Severity] | None = None
    site: list[str] | None = None
    device_type: list[str] | None = None
    device: list[str] | None = None
    rule: list[str] | None = None

    @field_validator("severity", "site", "device_type", "device", "rule")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list matches nothing: leave the key out to match all")
        return value


class Route(_Strict):
    """Alerts that `match` go to `channels`. Without `escalate_after_s` every channel is told
    at once; with it the channels are tiers: the first at once, each next one when the alert
    is still active and unacknowledged that much longer."""

    name: str = Field(default="", pattern=rf"{_NAME}|^$")
    match: RouteMatch = Field(default_factory=RouteMatch)
    channels: list[str] = Field(min_length=1)
    # Transitions of this route within the window after a message go out together at its end.
    group_window_s: float = Field(default=DEFAULT_GROUP_WINDOW_S, ge=0, le=3600)
    # An active, unacknowledged alert is told again this often (0: never).
    repeat_interval_s: float = Field(default=DEFAULT_REPEAT_INTERVAL_S, ge=0, le=7 * 86_400)
    escalate_after_s: float | None = Field(default=None, gt=0, le=7 * 86_400)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    def initial_channels(self) -> list[str]:
        return self.channels if self.escalate_after_s is None else self.channels[:1]


class NotificationConfig(_Strict):
    """Channels by unique name and routes, each route's channels among them."""

    channels: list[Channel] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)


def _field_path(loc: Sequence[int | str], channel_kinds: Iterable[str]) -> str:
    out = ""
    kinds = set(channel_kinds)
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in kinds:
            continue  # the discriminated union's tag, not a field
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _describe(exc: ValidationError) -> ConfigError:
    kinds = ("webhook", "slack", "teams", "email")
    parts = []
    for error in exc.errors():
        path = _field_path(error["loc"], kinds)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The tag is the field at fault.
            path = "type" if path == "(top level)" else f"{path}.type"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{path}: {message}")
    return ConfigError("; ".join(parts))


def _named_routes(routes: list[Route]) -> list[Route]:
    """Each route with a name (`route-N` by position when none is given), names unique."""
    named = [
        r if r.name else r.model_copy(update={"name": f"route-{i + 1}"})
        for i, r in enumerate(routes)
    ]
    seen: set[str] = set()
    for i, route in enumerate(named):
        if route.name in seen:
            raise ConfigError(f"routes[{i}].name: {route.name!r} is used twice")
        seen.add(route.name)
    return named


def check_config(config: NotificationConfig) -> NotificationConfig:
    """Names unique and every route's channels defined; routes named. ConfigError otherwise."""
    names: set[str] = set()
    for i, channel in enumerate(config.channels):
        if channel.name in names:
            raise ConfigError(f"channels[{i}].name: {channel.name!r} is used twice")
        names.add(channel.name)
    for i, route in enumerate(config.routes):
        for j, name in enumerate(route.channels):
            if name not in names:
                raise ConfigError(f"routes[{i}].channels[{j}]: unknown channel {name!r}")
    return config.model_copy(update={"routes": _named_routes(config.routes)})


def parse_config(data: object) -> NotificationConfig:
    """A whole configuration (the file's shape), checked; ConfigError naming the field."""
    if data is None:
        data = {}
    try:
        config = NotificationConfig.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc) from None
    return check_config(config)


def parse_channel(data: object) -> Channel:
    """One channel (an API body); ConfigError naming the field."""
    try:
        return _CHANNEL.validate_python(data)
    except ValidationError as exc:
        raise _describe(exc) from None


def parse_route(data: object) -> Route:
    """One route (an API body), its channels not yet checked; ConfigError naming the field."""
    try:
        return Route.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc) from None


def load_file(path: Path) -> NotificationConfig:
    """`HUB_NOTIFICATIONS_FILE`, parsed and checked; ConfigError (with the path) if not."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _mask(value: str | None) -> str | None:
    if value is None or _ENV_REF.match(value):
        return value
    return MASK


def _mask_url(url: str) -> str:
    if _ENV_REF.match(url):
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/{MASK}"


def masked(channel: Channel) -> dict[str, Any]:
    """The channel as JSON with its inline secrets hidden (env references stay visible)."""
    data = channel.model_dump(mode="json")
    if isinstance(channel, WebhookChannel):
        data["headers"] = {k: _mask(v) for k, v in channel.headers.items()}
        parts = urlsplit(channel.url)
        if parts.password is not None or parts.query:
            data["url"] = _mask_url(channel.url)
    elif isinstance(channel, SlackChannel | TeamsChannel):
        data["url"] = _mask_url(channel.url)
    elif isinstance(channel, EmailChannel):
        data["password"] = _mask(channel.password)
    return data


def unmask(new: Mapping[str, Any], old: Channel | None) -> dict[str, Any]:
    """An API edit that sends back a masked value keeps the stored secret."""
    if old is None:
        return dict(new)
    stored = old.model_dump(mode="json")
    out = dict(new)
    for key in ("password", "url"):
        value = out.get(key)
        if isinstance(value, str) and MASK in value and key in stored:
            out[key] = stored[key]
    headers = out.get("headers")
    if isinstance(headers, dict) and isinstance(stored.get("headers"), dict):
        out["headers"] = {
            k: stored["headers"].get(k, v) if v == MASK else v for k, v in headers.items()
        }
    return out
