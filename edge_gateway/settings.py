"""Edge gateway settings: one frozen object, every field from an `EDGE_*` environment variable."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from iot_common.kafka_security import KafkaSecurityFields
from iot_common.settings_cli import describe_settings, mask_url
from protocol.topics import IDENTIFIER_PATTERN, TOPIC_PREFIX_PATTERN

Compression = Literal["none", "gzip", "lz4", "zstd", "snappy"]


def _default_gateway_id() -> str:
    return "edge-" + (socket.gethostname().split(".")[0] or "gateway")


class MqttEndpoint:
    """Host, port, TLS and optional credentials parsed from an `mqtt[s]://user:pass@host:port`
    URL (`mqtts` = TLS, port 8883 by default)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"MQTT URL {mask_url(url)!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {mask_url(url)!r} has no host")
        self.tls: bool = parts.scheme in ("mqtts", "ssl")
        self.host: str = parts.hostname
        try:
            self.port: int = parts.port or (8883 if self.tls else 1883)
        except ValueError as exc:
            raise ValueError(f"MQTT URL {mask_url(url)!r}: {exc}") from None
        self.username: str | None = unquote(parts.username) if parts.username else None
        self.password: str | None = unquote(parts.password) if parts.password else None

    @property
    def url(self) -> str:
        """Without credentials, for logs."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class EdgeSettings(BaseSettings, KafkaSecurityFields):
    model_config = SettingsConfigDict(env_prefix="EDGE_", frozen=True, extra="ignore")

    gateway_id: str = Field(default_factory=_default_gateway_id, pattern=f"^{IDENTIFIER_PATTERN}$")
    site: str = Field(default="site-1", pattern=f"^{IDENTIFIER_PATTERN}$")

    # MQTT: unset URL = run the embedded amqtt broker on mqtt_bind:mqtt_port.
    mqtt_url: str | None = None
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_bind: str = "0.0.0.0"
    mqtt_password_file: Path | None = None
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str | None = None
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)
    # Secure default: the embedded broker refuses clients without a user name and password.
    mqtt_allow_anonymous: bool = False
    mqtt_acl_file: Path | None = None
    # The embedded broker's TLS listener (unset port = none); with the CA file, clients must
    # present a certificate it signed. Loaded and checked at start-up (edge_gateway/mqtt_tls.py).
    mqtt_tls_port: int | None = Field(default=None, ge=1, le=65535)
    mqtt_tls_bind: str | None = None  # unset = EDGE_MQTT_BIND
    mqtt_tls_certfile: Path | None = None
    mqtt_tls_keyfile: Path | None = None
    mqtt_tls_cafile: Path | None = None
    # The client side of an mqtts:// EDGE_MQTT_URL: the CA that signed the broker's certificate
    # (unset = the system's trust store) and an optional client certificate for mutual TLS.
    mqtt_cafile: Path | None = None
    mqtt_certfile: Path | None = None
    mqtt_keyfile: Path | None = None

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Put before every topic name (`bench.` -> `bench.iot.telemetry`): several systems, or a
    # benchmark beside a demo, on one Kafka. The hub's HUB_KAFKA_TOPIC_PREFIX must match.
    kafka_topic_prefix: str = Field(default="", pattern=f"^{TOPIC_PREFIX_PATTERN}$")
    # TLS and SASL: the EDGE_KAFKA_SECURITY_* / _SASL_* / _SSL_* fields of KafkaSecurityFields.
    kafka_compression: Compression = "lz4"
    # iot.telemetry values: 2 packs each device's readings of one send into one record (hubs
    # read both versions from this release on); 1 for hubs older than this release.
    kafka_value_version: Literal[1, 2] = 2
    # Also how long a batch can wait on a Kafka that just went away before it is retried.
    kafka_request_timeout_ms: int = Field(default=5_000, ge=1000)

    buffer_path: Path = Path(".local/edge/buffer.db")
    buffer_max_bytes: int = Field(default=1024**3, ge=1024)
    buffer_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    bridge_batch_max: int = Field(default=2000, ge=1)
    forward_batch_max: int = Field(default=5000, ge=1)
    forward_batch_bytes: int = Field(default=4 * 1024**2, ge=1024)
    forward_backoff_max_s: float = Field(default=30.0, gt=0)

    max_ts_past_s: int = Field(default=7 * 24 * 3600, ge=0)
    max_ts_future_s: int = Field(default=3600, ge=0)

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8081, ge=0, le=65535)
    metrics_interval_s: float = Field(default=10.0, gt=0)

    simulators: str = "none"
    simulator_count_per_type: int = Field(default=1, ge=1)
    simulator_rate_hz: float = Field(default=1.0, gt=0)
    simulator_seed: int = 42
    simulator_anomaly_probability: float = Field(default=0.001, ge=0, le=1)

    # OPC UA and Modbus TCP connectors (docs/connectors.md); validated at start, refused whole.
    connectors_file: Path | None = None
    # Sparkplug B host (edge_gateway/sparkplug, docs/sparkplug.md): off unless asked for, so a
    # gateway on a shared plant broker takes in no one else's Sparkplug traffic by surprise.
    sparkplug_enabled: bool = False
    # The host id of spBv1.0/STATE/{host_id}; unset = the gateway id.
    sparkplug_host_id: str | None = Field(default=None, pattern=r"^[^/+#]{1,64}$")
    # How long a message after a seq gap waits for the missing ones before a rebirth request.
    sparkplug_reorder_timeout_ms: int = Field(default=2000, ge=10, le=60_000)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("mqtt_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value:
            MqttEndpoint(value)
            return value
        return None

    @property
    def embedded_broker(self) -> bool:
        return self.mqtt_url is None

    @property
    def bridge_client_id(self) -> str:
        return self.mqtt_client_id or f"bridge-{self.gateway_id}"

    @property
    def sparkplug_host(self) -> str:
        return self.sparkplug_host_id or self.gateway_id

    def mqtt_endpoint(self) -> MqttEndpoint:
        """Where the bridge (and in-process simulators) connect."""
        if self.mqtt_url:
            endpoint = MqttEndpoint(self.mqtt_url)
        else:
            host = "127.0.0.1" if self.mqtt_bind in ("0.0.0.0", "::", "") else self.mqtt_bind
            endpoint = MqttEndpoint(f"mqtt://{host}:{self.mqtt_port}")
        if self.mqtt_username:
            endpoint.username = self.mqtt_username
        if self.mqtt_password:
            endpoint.password = self.mqtt_password.get_secret_value()
        return endpoint

    def describe(self) -> list[tuple[str, str]]:
        """Effective settings as (ENV_NAME, value) pairs with secrets masked."""
        return describe_settings(self, "EDGE_")
