"""Hub settings: one frozen object, every field from a `HUB_*` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.storage.tiers import DEFAULT_RETENTION, format_retention, parse_retention
from iot_common.kafka_security import KafkaSecurityFields
from iot_common.settings_cli import describe_settings
from protocol.topics import TOPIC_PREFIX_PATTERN, KafkaTopics, topic_name

# Not in the edge's contract: records the hub cannot decode go here with their reason.
HUB_DLQ_TOPIC = "iot.hub.dlq"


class HubSettings(BaseSettings, KafkaSecurityFields):
    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Put before every topic name, the hub's dead-letter topic included; the gateways'
    # EDGE_KAFKA_TOPIC_PREFIX must match.
    kafka_topic_prefix: str = Field(default="", pattern=f"^{TOPIC_PREFIX_PATTERN}$")
    # TLS and SASL: the HUB_KAFKA_SECURITY_* / _SASL_* / _SSL_* fields of KafkaSecurityFields.
    database_url: str = "postgresql://iot:iot@127.0.0.1:5432/iot"
    redis_url: str = "redis://127.0.0.1:6379/0"
    http_port: int = Field(default=8080, ge=0, le=65535)

    consumer_group: str = "iot-hub"
    # How long the group waits for a worker that stopped heartbeating (killed, frozen, cut off)
    # before its partitions go to the others. Heartbeats come from Faust's consumer thread, so a
    # busy event loop does not miss them.
    kafka_session_timeout_s: float = Field(default=15.0, ge=6, le=300)
    topic_partitions: int = Field(default=6, ge=1)
    ingest_batch_max: int = Field(default=2000, ge=1)
    # Ingest flushes a batch at once when the pipe is idle; under load, batches are this far
    # apart (they fill meanwhile, up to ingest_batch_max): it bounds how long a reading waits
    # for its batch, and the number of transactions and live messages per second.
    ingest_batch_wait_s: float = Field(default=0.1, gt=0)
    # A record whose ts is further ahead of the hub's clock is dead-lettered (ts_out_of_range):
    # it would freeze what only moves forward (device state, last-seen, rule windows). At most
    # a day: PostgreSQL takes a device state further ahead than that as left by a bad clock.
    max_ts_future_s: int = Field(default=3600, ge=0, le=86_400)

    retention_days: int = Field(default=30, ge=1)
    partitions_ahead_days: int = Field(default=3, ge=1)
    rollup_grace_s: float = Field(default=120.0, ge=0)
    # Days each rollup tier is kept, `1m=90,1h=730,1d=3650` (hub.storage.tiers.parse_retention:
    # any subset; a coarser tier at least as long as a finer one). Shown normalised.
    rollup_retention_days: str = format_retention(DEFAULT_RETENTION)

    rules_file: Path | None = None
    # How often each worker checks PostgreSQL for a new version of the dashboard's rule edits.
    rules_poll_s: float = Field(default=2.0, gt=0, le=300)
    device_offline_after_s: float = Field(default=60.0, gt=0)
    gateway_offline_after_s: float = Field(default=30.0, gt=0)
    # A warning while a gateway reports its buffer full sooner than this (0: never).
    buffer_runway_warn_s: float = Field(default=3600.0, ge=0)
    # Longest an operator may shelve an alert for (docs/alarms.md).
    shelve_max_hours: float = Field(default=24.0, gt=0, le=8760)
    # How often each worker re-reads the maintenance windows from PostgreSQL.
    windows_reload_s: float = Field(default=5.0, gt=0, le=300)

    # Notification channels and routes (docs/notifications.md): seeds the database at every
    # worker start; entries made in the dashboard or the API live beside the file's.
    notifications_file: Path | None = None
    # Longest wait between two attempts at a notification its receiver refused (backoff cap).
    notifications_retry_max_s: float = Field(default=300.0, ge=1, le=3600)
    # The dashboard's address as its users reach it, for the links in notifications.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")

    worker_web_port: int = Field(default=6066, ge=0, le=65535)

    # `iot-hub web`: NiceGUI signs its session cookies with the storage secret, so it has no
    # default; the command refuses to start without one.
    web_storage_secret: SecretStr | None = None
    web_host: str = "127.0.0.1"
    web_session_hours: float = Field(default=12.0, gt=0)
    web_client_queue: int = Field(default=1000, ge=1)  # live messages held per slow client
    # Login throttling (hub/web/throttle.py): failed sign-ins allowed per user name and per
    # client address before each further attempt waits 1 s, 2 s, 4 s... up to the maximum.
    # An address gets more, since a factory's operators often share one NAT address.
    web_login_free_failures: int = Field(default=5, ge=1, le=1000)
    web_login_free_failures_per_address: int = Field(default=20, ge=1, le=100_000)
    web_login_max_wait_s: float = Field(default=900.0, ge=1, le=86_400)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def topics(self) -> KafkaTopics:
        return KafkaTopics(self.kafka_topic_prefix)

    @property
    def dlq_topic(self) -> str:
        return topic_name(HUB_DLQ_TOPIC, self.kafka_topic_prefix)

    @field_validator("rollup_retention_days")
    @classmethod
    def _normalise_rollup_retention(cls, value: str) -> str:
        return format_retention(parse_retention(value))

    @property
    def rollup_retention(self) -> dict[str, int]:
        """`rollup_retention_days` as days per tier."""
        return {str(k): v for k, v in parse_retention(self.rollup_retention_days).items()}

    def describe(self) -> list[tuple[str, str]]:
        """Effective settings as (ENV_NAME, value) pairs with secrets masked."""
        return describe_settings(self, "HUB_")
