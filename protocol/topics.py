"""Topic names for MQTT (devices -> edge) and Kafka (edge -> hub), and MQTT topic parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

# Kafka topics (DESIGN.md, "Kafka (edge -> hub)").
TELEMETRY: Final = "iot.telemetry"
TELEMETRY_DLQ: Final = "iot.telemetry.dlq"
DEVICE_STATUS: Final = "iot.device-status"
EDGE_METRICS: Final = "iot.edge-metrics"
ALERTS: Final = "iot.alerts"
# Device metadata from the edge (protocol.device_metadata); not in KAFKA_TOPICS, the contract
# of DESIGN.md, yet: the hub's worker creates it, as it does its own topics.
DEVICE_METADATA: Final = "iot.device-metadata"
KAFKA_TOPICS: Final = (TELEMETRY, TELEMETRY_DLQ, DEVICE_STATUS, EDGE_METRICS, ALERTS)
# A deployment's topic prefix (EDGE_KAFKA_TOPIC_PREFIX, HUB_KAFKA_TOPIC_PREFIX): Kafka's topic
# characters, short enough that every prefixed name stays within Kafka's 249.
TOPIC_PREFIX_PATTERN: Final = r"[A-Za-z0-9._-]{0,100}"
_TOPIC_PREFIX = re.compile(TOPIC_PREFIX_PATTERN)

# MQTT subscriptions used by the edge bridge.
MQTT_TELEMETRY_FILTER: Final = "plant/+/+/telemetry"
MQTT_STATUS_FILTER: Final = "plant/+/+/status"


def matches_device_filters(topic: str) -> bool:
    """True if a published topic matches MQTT_TELEMETRY_FILTER or MQTT_STATUS_FILTER."""
    parts = topic.split("/")
    return (
        len(parts) == 4
        and parts[0] == "plant"
        and parts[3] in ("telemetry", "status")
        and "+" not in topic
        and "#" not in topic
    )


IDENTIFIER_PATTERN: Final = r"[A-Za-z0-9_.-]{1,64}"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)

MqttKind = Literal["telemetry", "status"]


class TopicError(ValueError):
    """An MQTT topic that does not follow `plant/{site}/{device_id}/{telemetry|status}`."""


@dataclass(frozen=True, slots=True)
class MqttTopic:
    site: str
    device_id: str
    kind: MqttKind


def topic_name(name: str, prefix: str = "") -> str:
    """The Kafka topic of one of the contract's topics (or the hub's own) under `prefix`: the
    one place a prefixed name is made, so edge, hub and tools cannot disagree."""
    if not _TOPIC_PREFIX.fullmatch(prefix):
        raise ValueError(f"topic prefix {prefix!r} must match {TOPIC_PREFIX_PATTERN}")
    return prefix + name


@dataclass(frozen=True, slots=True)
class KafkaTopics:
    """The contract's Kafka topics under one prefix ("" = the names in DESIGN.md)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        topic_name("", self.prefix)  # refuse a bad prefix at construction

    @property
    def telemetry(self) -> str:
        return topic_name(TELEMETRY, self.prefix)

    @property
    def telemetry_dlq(self) -> str:
        return topic_name(TELEMETRY_DLQ, self.prefix)

    @property
    def device_status(self) -> str:
        return topic_name(DEVICE_STATUS, self.prefix)

    @property
    def edge_metrics(self) -> str:
        return topic_name(EDGE_METRICS, self.prefix)

    @property
    def alerts(self) -> str:
        return topic_name(ALERTS, self.prefix)

    @property
    def device_metadata(self) -> str:
        return topic_name(DEVICE_METADATA, self.prefix)

    def all(self) -> tuple[str, ...]:
        return tuple(topic_name(name, self.prefix) for name in KAFKA_TOPICS)


def is_identifier(value: str) -> bool:
    return _IDENTIFIER.fullmatch(value) is not None


def _check_identifier(what: str, value: str) -> str:
    if not is_identifier(value):
        raise TopicError(f"{what} {value!r} must match {IDENTIFIER_PATTERN}")
    return value


def _device_topic(site: str, device_id: str, kind: MqttKind) -> str:
    _check_identifier("site", site)
    _check_identifier("device_id", device_id)
    return f"plant/{site}/{device_id}/{kind}"


def telemetry_topic(site: str, device_id: str) -> str:
    return _device_topic(site, device_id, "telemetry")


def status_topic(site: str, device_id: str) -> str:
    return _device_topic(site, device_id, "status")


def parse_mqtt_topic(topic: str) -> MqttTopic:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "plant":
        raise TopicError(f"topic {topic!r} is not plant/{{site}}/{{device_id}}/{{kind}}")
    _, site, device_id, kind = parts
    if kind not in ("telemetry", "status"):
        raise TopicError(f"topic {topic!r} ends in {kind!r}, expected 'telemetry' or 'status'")
    _check_identifier("site", site)
    _check_identifier("device_id", device_id)
    return MqttTopic(site, device_id, "telemetry" if kind == "telemetry" else "status")


UNPREFIXED: Final = KafkaTopics()  # the names in DESIGN.md
