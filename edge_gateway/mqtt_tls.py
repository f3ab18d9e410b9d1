"""TLS contexts for MQTT: the embedded broker's listener and the client side of `mqtts://`.

Every file is loaded here, once, at start-up, so a bad one is reported as one line naming the
setting (`SettingError`) before anything listens or connects, never as a fallback to plaintext.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class SettingError(ValueError):
    """A setting whose value cannot work; `str()` is the line shown to the operator."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"invalid setting {setting}: {problem}")
        self.setting = setting
        self.problem = problem


def _no_password() -> bytes:
    # An encrypted key would otherwise make OpenSSL prompt on the terminal; this fails it.
    return b""


def _check_readable(setting: str, path: Path) -> None:
    if not path.is_file():
        raise SettingError(setting, f"{path} does not exist or is not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SettingError(setting, f"{path} cannot be read: {exc.strerror}") from None


def _load_cas(context: ssl.SSLContext, setting: str, cafile: Path) -> None:
    _check_readable(setting, cafile)
    try:
        context.load_verify_locations(cafile=str(cafile))
    except ssl.SSLError:
        raise SettingError(setting, f"{cafile} holds no PEM certificate") from None


def _load_chain(
    context: ssl.SSLContext, cert_setting: str, certfile: Path, key_setting: str, keyfile: Path
) -> None:
    _check_readable(cert_setting, certfile)
    _check_readable(key_setting, keyfile)
    # The certificate alone first, so a bad one is not blamed on the key.
    _load_cas(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_setting, certfile)
    try:
        context.load_cert_chain(str(certfile), str(keyfile), password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise SettingError(
                key_setting, f"{keyfile} does not match the certificate in {cert_setting}"
            ) from None
        raise SettingError(
            key_setting, f"{keyfile} is not an unencrypted PEM private key ({exc.reason or exc})"
        ) from None


def server_context(
    certfile: Path | None,
    keyfile: Path | None,
    cafile: Path | None,
    *,
    prefix: str = "EDGE_MQTT_TLS_",
) -> ssl.SSLContext:
    """The listener's context; with `cafile`, clients must present a certificate it signed."""
    if certfile is None:
        raise SettingError(f"{prefix}CERTFILE", f"required with {prefix}PORT")
    if keyfile is None:
        raise SettingError(f"{prefix}KEYFILE", f"required with {prefix}PORT")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, f"{prefix}CERTFILE", certfile, f"{prefix}KEYFILE", keyfile)
    if cafile is not None:
        _load_cas(context, f"{prefix}CAFILE", cafile)
        # CERT_REQUIRED, not amqtt's own CERT_OPTIONAL: a client without a certificate fails the
        # handshake instead of getting in.
        context.verify_mode = ssl.CERT_REQUIRED
    return context


CLIENT_SETTINGS = ("EDGE_MQTT_CAFILE", "EDGE_MQTT_CERTFILE", "EDGE_MQTT_KEYFILE")


def client_context(
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    *,
    names: tuple[str, str, str] = CLIENT_SETTINGS,
) -> ssl.SSLContext:
    """For `mqtts://`: verifies the broker's certificate and host name against `cafile` (only
    that CA) or else the system's trust store, and presents a client certificate when given one.
    `names` are the settings (or options) the three files come from, for error messages."""
    ca_name, cert_name, key_name = names
    if cafile is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peer and host name
        _load_cas(context, ca_name, cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if (certfile is None) != (keyfile is None):
        missing, present = (key_name, cert_name) if keyfile is None else (cert_name, key_name)
        raise SettingError(missing, f"required with {present}")
    if certfile is not None and keyfile is not None:
        _load_chain(context, cert_name, certfile, key_name, keyfile)
    return context
