"""Wire contracts shared by the edge gateway and the hub: models, topic names and the codec."""

from protocol.codec import (
    DecodeError,
    decode_status,
    decode_telemetry,
    decode_telemetry_value,
    encode,
    encode_telemetry_batch,
    parse_topic,
)
from protocol.models import (
    MAX_METRICS,
    MAX_PAYLOAD_BYTES,
    DeadLetter,
    DevicePayload,
    DeviceStatus,
    EdgeMetrics,
    NormalisedReading,
    StatusPayload,
    TelemetryBatch,
)
from protocol.topics import MqttTopic, TopicError, parse_mqtt_topic, status_topic, telemetry_topic

__all__ = [
    "MAX_METRICS",
    "MAX_PAYLOAD_BYTES",
    "DeadLetter",
    "DecodeError",
    "DevicePayload",
    "DeviceStatus",
    "EdgeMetrics",
    "MqttTopic",
    "NormalisedReading",
    "StatusPayload",
    "TelemetryBatch",
    "TopicError",
    "decode_status",
    "decode_telemetry",
    "decode_telemetry_value",
    "encode",
    "encode_telemetry_batch",
    "parse_mqtt_topic",
    "parse_topic",
    "status_topic",
    "telemetry_topic",
]
