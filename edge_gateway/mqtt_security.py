"""Everything MQTT security reads from disk, loaded once at start-up: the password file, the ACL
file and the TLS material of the embedded broker's listener and of an `mqtts://` broker.

`load_mqtt_security` raises `SettingError`, one line naming the setting and the problem, for
anything that cannot work; `iot-edge run` prints it and exits 2 before anything listens."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from edge_gateway.broker_auth import ConnectPolicy, InternalCredential, parse_password_file
from edge_gateway.mqtt_acl import AclRules, AclSyntaxError, parse_acl
from edge_gateway.mqtt_tls import SettingError, client_context, server_context
from edge_gateway.settings import EdgeSettings, MqttEndpoint


@dataclass(frozen=True, slots=True)
class TlsListener:
    bind: str
    port: int
    context: ssl.SSLContext
    client_certificates: bool  # required, with EDGE_MQTT_TLS_CAFILE


@dataclass(frozen=True, slots=True)
class MqttSecurity:
    policy: ConnectPolicy  # the embedded broker's; unused with an external one
    tls_listener: TlsListener | None
    client_tls: ssl.SSLContext | None  # for an mqtts:// EDGE_MQTT_URL

    def gateway_endpoint(self, settings: EdgeSettings) -> MqttEndpoint:
        """Where the bridge and the in-process simulators connect, as whom: on the embedded
        broker with the internal credential, on an external one as EDGE_MQTT_URL says."""
        endpoint = settings.mqtt_endpoint()
        if settings.embedded_broker:
            endpoint.username = self.policy.internal.username
            endpoint.password = self.policy.internal.password
        return endpoint


def _read(setting: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingError(setting, f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError(setting, f"{path} cannot be read: {exc}") from None


def load_acl(path: Path) -> AclRules:
    try:
        return parse_acl(_read("EDGE_MQTT_ACL_FILE", path))
    except AclSyntaxError as exc:
        raise SettingError("EDGE_MQTT_ACL_FILE", f"{path}, {exc}") from None


def load_users(path: Path) -> dict[str, str]:
    try:
        return parse_password_file(_read("EDGE_MQTT_PASSWORD_FILE", path))
    except ValueError as exc:
        if isinstance(exc, SettingError):
            raise
        raise SettingError("EDGE_MQTT_PASSWORD_FILE", f"{path}, {exc}") from None


def _check_unused(settings: EdgeSettings) -> None:
    """A setting that would silently do nothing is a mistake worth stopping for: an operator
    who set a CA file believes the link is encrypted."""
    s = settings
    if s.embedded_broker:
        for name in ("mqtt_cafile", "mqtt_certfile", "mqtt_keyfile"):
            if getattr(s, name) is not None:
                raise SettingError(
                    f"EDGE_{name.upper()}", "applies to an mqtts:// EDGE_MQTT_URL only"
                )
    else:
        for name in (
            "mqtt_tls_port",
            "mqtt_tls_certfile",
            "mqtt_tls_keyfile",
            "mqtt_tls_cafile",
            "mqtt_acl_file",
            "mqtt_password_file",
        ):
            if getattr(s, name) is not None:
                raise SettingError(
                    f"EDGE_{name.upper()}",
                    "applies to the embedded broker only (EDGE_MQTT_URL is set); configure "
                    "the external broker itself",
                )
        if not s.mqtt_endpoint().tls:
            for name in ("mqtt_cafile", "mqtt_certfile", "mqtt_keyfile"):
                if getattr(s, name) is not None:
                    raise SettingError(f"EDGE_{name.upper()}", "needs an mqtts:// EDGE_MQTT_URL")
    if s.mqtt_tls_port is None:
        for name in ("mqtt_tls_certfile", "mqtt_tls_keyfile", "mqtt_tls_cafile"):
            if getattr(s, name) is not None:
                raise SettingError(f"EDGE_{name.upper()}", "needs EDGE_MQTT_TLS_PORT")
    elif s.mqtt_tls_port == s.mqtt_port and (s.mqtt_tls_bind or s.mqtt_bind) == s.mqtt_bind:
        raise SettingError("EDGE_MQTT_TLS_PORT", "is the same as EDGE_MQTT_PORT")


def load_mqtt_security(settings: EdgeSettings) -> MqttSecurity:
    s = settings
    _check_unused(s)
    users = load_users(s.mqtt_password_file) if s.mqtt_password_file else None
    acl = load_acl(s.mqtt_acl_file) if s.mqtt_acl_file else None
    policy = ConnectPolicy(
        internal=InternalCredential.generate(),
        allow_anonymous=s.mqtt_allow_anonymous,
        users=users,
        acl=acl,
        reserved_client_ids=frozenset({s.bridge_client_id}),
    )
    tls_listener = None
    if s.embedded_broker and s.mqtt_tls_port is not None:
        tls_listener = TlsListener(
            bind=s.mqtt_tls_bind or s.mqtt_bind,
            port=s.mqtt_tls_port,
            context=server_context(s.mqtt_tls_certfile, s.mqtt_tls_keyfile, s.mqtt_tls_cafile),
            client_certificates=s.mqtt_tls_cafile is not None,
        )
    client_tls = None
    if not s.embedded_broker and s.mqtt_endpoint().tls:
        client_tls = client_context(s.mqtt_cafile, s.mqtt_certfile, s.mqtt_keyfile)
    return MqttSecurity(policy, tls_listener, client_tls)


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def anonymous_beyond_loopback(settings: EdgeSettings) -> list[str]:
    """The listeners anonymous clients can reach from other hosts (empty: none, or no anonymous
    access): worth one warning at start."""
    s = settings
    if not (s.embedded_broker and s.mqtt_allow_anonymous):
        return []
    binds = [f"{s.mqtt_bind}:{s.mqtt_port}"] if not is_loopback(s.mqtt_bind) else []
    tls_bind = s.mqtt_tls_bind or s.mqtt_bind
    if s.mqtt_tls_port is not None and not is_loopback(tls_bind):
        binds.append(f"{tls_bind}:{s.mqtt_tls_port}")
    return binds
