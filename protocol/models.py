"""Message models of the wire contracts in DESIGN.md. Pure data: no I/O."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)

from protocol.topics import IDENTIFIER_PATTERN

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_METRICS: Final = 256
METRIC_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
SCHEMA_VERSION: Final = 1
# `iot.telemetry` values: version 1 is one reading, version 2 several readings of one device.
TELEMETRY_VERSIONS: Final = (1, 2)
MAX_BATCH_READINGS: Final = 10_000
# A version 2 value at most: Kafka's default max.message.bytes (1 MiB) would refuse more anyway.
MAX_BATCH_BYTES: Final = 1024 * 1024
# Plant values are far smaller; the bound keeps sums and averages over any number of readings
# (PostgreSQL's avg, rate-of-change rules) finite, where 1e308 would overflow them.
MAX_METRIC_MAGNITUDE: Final = 1e15
# The last millisecond of year 9999: every datetime library (and PostgreSQL) can hold it.
MAX_EPOCH_MS: Final = 253_402_300_799_999

MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
MetricNumber = Annotated[StrictFloat, Field(ge=-MAX_METRIC_MAGNITUDE, le=MAX_METRIC_MAGNITUDE)]
# StrictBool first: a JSON `true` stays a boolean and never becomes 1.0.
MetricValue = StrictBool | MetricNumber
Identifier = Annotated[str, StringConstraints(pattern=f"^{IDENTIFIER_PATTERN}$")]
DeviceType = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
EpochMs = Annotated[StrictInt, Field(ge=0, le=MAX_EPOCH_MS)]  # 1970 up to year 9999
Seq = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]  # fits PostgreSQL's bigint
Metrics = Annotated[dict[MetricName, MetricValue], Field(min_length=1, max_length=MAX_METRICS)]
# A device may send epoch milliseconds or an RFC 3339 string; the codec normalises to epoch ms.
RawTimestamp = EpochMs | str


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DevicePayload(_Wire):
    """What a device publishes on `plant/{site}/{device_id}/telemetry`."""

    model_config = ConfigDict(
        title="DeviceTelemetry",
        json_schema_extra={
            "description": "Telemetry payload published by a device on "
            "plant/{site}/{device_id}/telemetry (UTF-8 JSON, at most 64 KiB).",
            "examples": [
                {
                    "ts": 1764268800123,
                    "seq": 17,
                    "type": "cnc_spindle",
                    "metrics": {"spindle_temp_c": 61.2, "vibration_mm_s": 2.4, "running": True},
                }
            ],
        },
    )

    ts: RawTimestamp | None = Field(
        default=None,
        description="Epoch milliseconds or an RFC 3339 string with a time zone; "
        "missing means the gateway's receive time.",
    )
    seq: Seq | None = Field(
        default=None, description="Per-device counter for gap detection and de-duplication."
    )
    type: DeviceType | None = Field(
        default=None, description="Device type; known types get default alert rules."
    )
    metrics: Metrics = Field(
        description="1..256 metrics: name [a-z][a-z0-9_]{0,63}, "
        "value a boolean or a finite number of magnitude at most 1e15.",
    )


class StatusPayload(_Wire):
    """What a device publishes (retained) on `plant/{site}/{device_id}/status`."""

    state: Literal["online", "offline"]
    ts: RawTimestamp | None = None


# The Kafka records below are validated again where they are read: the hub takes nothing from
# a topic on trust (anything with write access to it could have produced the record).


class NormalisedReading(_Wire):
    """Value of `iot.telemetry` version 1, keyed by device_id: one reading."""

    v: Literal[1] = SCHEMA_VERSION
    site: Identifier
    device_id: Identifier
    type: DeviceType | None
    ts: EpochMs
    seq: Seq | None
    metrics: Metrics
    gateway_id: Identifier
    received_ts: EpochMs


class TelemetryBatch(_Wire):
    """Value of `iot.telemetry` version 2, keyed by device_id: several readings of that one
    device, oldest first, each exactly a version 1 value. The edge packs them to cut the hub's
    cost per Kafka record; the hub reads both versions."""

    v: Literal[2] = 2
    readings: Annotated[list[NormalisedReading], Field(min_length=1, max_length=MAX_BATCH_READINGS)]

    @model_validator(mode="after")
    def _one_device(self) -> TelemetryBatch:
        # One key, one partition, one order: a value mixing devices would break all three.
        first = self.readings[0].device_id
        if any(r.device_id != first for r in self.readings):
            raise ValueError("readings of more than one device_id in one value")
        return self


class DeviceStatus(_Wire):
    """Value of `iot.device-status`, keyed by device_id."""

    v: Literal[1] = SCHEMA_VERSION
    site: Identifier
    device_id: Identifier
    state: Literal["online", "offline"]
    ts: EpochMs
    gateway_id: Identifier


class ConnectorMetrics(_Wire):
    """One OPC UA or Modbus connector of a gateway (EDGE_CONNECTORS_FILE), in its heartbeat."""

    name: Identifier
    kind: Literal["opcua", "modbus"]
    connected: bool
    values_rate: float = Field(ge=0, description="Values per second over the last interval.")
    errors: dict[str, int] = Field(default_factory=dict, description="Counts by reason.")
    last_error: str | None = Field(default=None, max_length=300)


class EdgeMetrics(_Wire):
    """Value of `iot.edge-metrics`, keyed by gateway_id, published every 10 s."""

    v: Literal[1] = SCHEMA_VERSION
    gateway_id: Identifier
    site: Identifier
    ts: EpochMs
    uptime_s: float
    buffer_depth: int
    buffer_bytes: int
    buffer_max_bytes: int
    buffer_oldest_age_s: float | None
    # Optional, so records of gateways that predate it still decode.
    buffer_runway_s: float | None = Field(
        default=None,
        ge=0,
        description="Seconds until the buffer is full at its current net growth; "
        "null while it is not growing.",
    )
    received_total: int
    forwarded_total: int
    dropped_total: int
    dead_lettered_total: int
    received_rate: float = Field(description="Messages per second over the last interval.")
    forwarded_rate: float = Field(description="Records per second over the last interval.")
    kafka_connected: bool
    # Optional, and left out of the record by gateways without connectors, so records of older
    # gateways decode and hubs older than it still read those of gateways without connectors.
    connectors: list[ConnectorMetrics] | None = None


class DeadLetter(BaseModel):
    """A record for `iot.telemetry.dlq`: the raw payload plus why it was refused."""

    model_config = ConfigDict(frozen=True)

    error: str
    mqtt_topic: str
    gateway_id: str
    received_ts: int
    device_id: str | None
    payload: bytes

    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return (
            ("error", self.error.encode()),
            ("mqtt_topic", self.mqtt_topic.encode("utf-8", "replace")),
            ("gateway_id", self.gateway_id.encode()),
            ("received_ts", str(self.received_ts).encode()),
        )
