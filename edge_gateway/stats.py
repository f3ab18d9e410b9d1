"""Gateway counters and the status snapshot shared by /api/v1/status, /metrics, the
`iot.edge-metrics` heartbeat and `iot-edge status`. Pure: the caller passes in the clock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from edge_gateway.buffer import BufferStats
from iot_common.prometheus import Family, one, render
from protocol.models import ConnectorMetrics, EdgeMetrics


@dataclass(slots=True)
class GatewayCounters:
    """Each field has one writer (the bridge thread or the forwarder task), so plain ints do."""

    received_total: int = 0
    readings_total: int = 0
    statuses_total: int = 0
    device_metadata_total: int = 0  # iot.device-metadata reports (births, connector configs)
    dead_lettered_total: int = 0
    forwarded_total: int = 0
    kafka_rejected_total: int = 0
    kafka_errors_total: int = 0
    buffer_errors_total: int = 0  # appends that failed (bridge)
    forward_buffer_errors_total: int = 0  # leases, acks, releases that failed (forwarder)
    # Refused by the embedded broker (edge_gateway.broker_auth), written on its event loop.
    mqtt_connect_refused_total: int = 0
    mqtt_publish_refused_total: int = 0
    mqtt_subscribe_refused_total: int = 0
    kafka_connected: bool = False
    mqtt_connected: bool = False
    kafka_last_error: str | None = None
    # Why Kafka cannot be reached (iot_common.kafka_diagnosis), and which setting to look at.
    kafka_failure: str | None = None
    kafka_hint: str | None = None
    buffer_last_error: str | None = None


class RateMeter:
    """Events per second over a sliding window of (time, running total) samples."""

    def __init__(self, window_s: float = 10.0) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, now_s: float, total: int) -> float:
        self._samples.append((now_s, total))
        while len(self._samples) > 2 and now_s - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        first_s, first_total = self._samples[0]
        elapsed = now_s - first_s
        return (total - first_total) / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SparkplugStatus:
    """The Sparkplug B host's (edge_gateway.sparkplug.host) view, when it is on."""

    host_id: str
    nodes_online: int
    rebirths_requested_total: int
    # Skipped metrics, refused messages and seq anomalies, by reason.
    by_reason: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "nodes_online": self.nodes_online,
            "rebirths_requested_total": self.rebirths_requested_total,
            "by_reason": dict(sorted(self.by_reason.items())),
        }


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    gateway_id: str
    site: str
    now_ms: int
    uptime_s: float
    mqtt_mode: str
    mqtt_address: str
    mqtt_connected: bool
    kafka_bootstrap: str
    kafka_connected: bool
    kafka_last_error: str | None
    buffer: BufferStats
    counters: GatewayCounters
    dead_lettered_by_reason: dict[str, int] = field(default_factory=dict)
    seq_gaps_total: int = 0
    seq_resets_total: int = 0
    received_rate: float = 0.0
    forwarded_rate: float = 0.0
    failed_tasks: tuple[str, ...] = ()  # background tasks that died; the gateway is then unready
    # Seconds until the buffer is full at the current net growth (edge_gateway.runway); None
    # while it is not growing.
    buffer_runway_s: float | None = None
    # edge_gateway.connectors.health.ConnectorHealth.snapshot() of each configured connector.
    connectors: tuple[dict[str, Any], ...] = ()
    sparkplug: SparkplugStatus | None = None  # None: the Sparkplug host is off

    @property
    def oldest_age_s(self) -> float | None:
        oldest = self.buffer.oldest_created_ms
        return None if oldest is None else max(0.0, (self.now_ms - oldest) / 1000)

    def to_json(self) -> dict[str, Any]:
        c, b = self.counters, self.buffer
        return {
            "gateway_id": self.gateway_id,
            "site": self.site,
            "ts": self.now_ms,
            "uptime_s": round(self.uptime_s, 1),
            "failed_tasks": list(self.failed_tasks),
            "mqtt": {
                "mode": self.mqtt_mode,
                "address": self.mqtt_address,
                "connected": self.mqtt_connected,
            },
            "kafka": {
                "bootstrap": self.kafka_bootstrap,
                "connected": self.kafka_connected,
                "last_error": self.kafka_last_error,
                "failure": None if self.kafka_connected else c.kafka_failure,
                "hint": None if self.kafka_connected else c.kafka_hint,
            },
            "buffer": {
                "depth": b.depth,
                "bytes": b.bytes,
                "max_bytes": b.max_bytes,
                "in_flight": b.in_flight,
                "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 3),
                "runway_s": _rounded(self.buffer_runway_s),
                "appended_total": b.appended_total,
                "acked_total": b.acked_total,
                "dropped_total": b.dropped_total,
                "last_error": c.buffer_last_error,
            },
            "counters": {
                "received_total": c.received_total,
                "readings_total": c.readings_total,
                "statuses_total": c.statuses_total,
                "device_metadata_total": c.device_metadata_total,
                "dead_lettered_total": c.dead_lettered_total,
                "dead_lettered_by_reason": dict(sorted(self.dead_lettered_by_reason.items())),
                "forwarded_total": c.forwarded_total,
                "kafka_rejected_total": c.kafka_rejected_total,
                "kafka_errors_total": c.kafka_errors_total,
                "buffer_errors_total": c.buffer_errors_total,
                "forward_buffer_errors_total": c.forward_buffer_errors_total,
                "mqtt_connect_refused_total": c.mqtt_connect_refused_total,
                "mqtt_publish_refused_total": c.mqtt_publish_refused_total,
                "mqtt_subscribe_refused_total": c.mqtt_subscribe_refused_total,
                "seq_gaps_total": self.seq_gaps_total,
                "seq_resets_total": self.seq_resets_total,
            },
            "rates": {
                "received_per_s": round(self.received_rate, 2),
                "forwarded_per_s": round(self.forwarded_rate, 2),
            },
            "connectors": list(self.connectors),
            "sparkplug": None if self.sparkplug is None else self.sparkplug.to_json(),
        }

    def to_edge_metrics(self) -> EdgeMetrics:
        return EdgeMetrics(
            gateway_id=self.gateway_id,
            site=self.site,
            ts=self.now_ms,
            uptime_s=round(self.uptime_s, 1),
            buffer_depth=self.buffer.depth,
            buffer_bytes=self.buffer.bytes,
            buffer_max_bytes=self.buffer.max_bytes,
            buffer_oldest_age_s=self.oldest_age_s,
            buffer_runway_s=_rounded(self.buffer_runway_s),
            received_total=self.counters.received_total,
            forwarded_total=self.counters.forwarded_total,
            dropped_total=self.buffer.dropped_total,
            dead_lettered_total=self.counters.dead_lettered_total,
            received_rate=round(self.received_rate, 2),
            forwarded_rate=round(self.forwarded_rate, 2),
            kafka_connected=self.kafka_connected,
            connectors=[
                ConnectorMetrics(
                    name=c["name"],
                    kind=c["kind"],
                    connected=c["connected"],
                    values_rate=c["values_rate"],
                    errors=c["errors"],
                    last_error=c["last_error"],
                )
                for c in self.connectors
            ]
            or None,
        )


def encode_edge_metrics(metrics: EdgeMetrics) -> bytes:
    """The heartbeat record; without `connectors` when there are none, so that hubs that
    predate the field keep reading gateways that do not use it."""
    exclude = {"connectors"} if metrics.connectors is None else None
    return metrics.model_dump_json(exclude=exclude).encode()


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _sparkplug_families(sparkplug: SparkplugStatus | None) -> list[Family]:
    if sparkplug is None:
        return []
    by_reason = [((("reason", r),), n) for r, n in sorted(sparkplug.by_reason.items())]
    return [
        Family(
            "edge_sparkplug_events_total",
            "counter",
            "Sparkplug metrics skipped, messages refused and seq anomalies, by reason.",
            by_reason,
        ),
        Family(
            "edge_sparkplug_rebirths_requested_total",
            "counter",
            "Sparkplug rebirth requests (NCMD Node Control/Rebirth) sent.",
            one(sparkplug.rebirths_requested_total),
        ),
        Family(
            "edge_sparkplug_nodes_online",
            "gauge",
            "Sparkplug edge nodes with a current NBIRTH.",
            one(sparkplug.nodes_online),
        ),
    ]


def prometheus_text(status: GatewayStatus) -> str:
    """Prometheus text exposition format 0.0.4."""
    c, b = status.counters, status.buffer
    by_reason = [((("reason", r),), n) for r, n in sorted(status.dead_lettered_by_reason.items())]
    buffer_errors = [
        ((("side", "bridge"),), c.buffer_errors_total),
        ((("side", "forwarder"),), c.forward_buffer_errors_total),
    ]
    refused = [
        ((("action", "connect"),), c.mqtt_connect_refused_total),
        ((("action", "publish"),), c.mqtt_publish_refused_total),
        ((("action", "subscribe"),), c.mqtt_subscribe_refused_total),
    ]
    return render(
        [
            *_sparkplug_families(status.sparkplug),
            Family(
                "edge_received_total", "counter", "MQTT messages received.", one(c.received_total)
            ),
            Family(
                "edge_readings_total", "counter", "Valid readings buffered.", one(c.readings_total)
            ),
            Family(
                "edge_device_metadata_total",
                "counter",
                "Device metadata reports buffered (Sparkplug births, connector configuration).",
                one(c.device_metadata_total),
            ),
            Family(
                "edge_forwarded_total",
                "counter",
                "Records acknowledged by Kafka.",
                one(c.forwarded_total),
            ),
            Family(
                "edge_dropped_total",
                "counter",
                "Oldest records dropped by a full buffer.",
                one(b.dropped_total),
            ),
            Family(
                "edge_dead_lettered_total",
                "counter",
                "Messages sent to the dead-letter topic.",
                one(c.dead_lettered_total),
            ),
            Family(
                "edge_dead_lettered_by_reason_total",
                "counter",
                "Dead letters by reason.",
                by_reason,
            ),
            Family(
                "edge_kafka_rejected_total",
                "counter",
                "Records Kafka refused for good (dropped and logged).",
                one(c.kafka_rejected_total),
            ),
            Family(
                "edge_kafka_errors_total",
                "counter",
                "Failed forward attempts.",
                one(c.kafka_errors_total),
            ),
            Family(
                "edge_buffer_errors_total",
                "counter",
                "Buffer calls that failed, by the side that made them.",
                buffer_errors,
            ),
            Family(
                "edge_mqtt_refused_total",
                "counter",
                "Refused by the embedded broker: connections (credentials), publishes and "
                "subscriptions (topic ACL).",
                refused,
            ),
            Family(
                "edge_seq_gaps_total",
                "counter",
                "Readings missing according to seq.",
                one(status.seq_gaps_total),
            ),
            Family("edge_buffer_depth", "gauge", "Records in the buffer.", one(b.depth)),
            Family("edge_buffer_bytes", "gauge", "Bytes in the buffer.", one(b.bytes)),
            Family("edge_buffer_max_bytes", "gauge", "Buffer budget in bytes.", one(b.max_bytes)),
            Family(
                "edge_buffer_in_flight", "gauge", "Records sent, awaiting Kafka.", one(b.in_flight)
            ),
            Family(
                "edge_buffer_oldest_age_seconds",
                "gauge",
                "Age of the oldest buffered record.",
                one(round(status.oldest_age_s or 0.0, 3)),
            ),
            Family(
                "edge_buffer_runway_seconds",
                "gauge",
                "Seconds until the buffer is full at the current net growth; absent while it "
                "is not growing.",
                [] if status.buffer_runway_s is None else one(round(status.buffer_runway_s, 1)),
            ),
            Family(
                "edge_kafka_connected",
                "gauge",
                "1 if Kafka is reachable.",
                one(int(status.kafka_connected)),
            ),
            Family(
                "edge_mqtt_connected",
                "gauge",
                "1 if the bridge is subscribed.",
                one(int(status.mqtt_connected)),
            ),
            Family(
                "edge_failed_tasks",
                "gauge",
                "Background tasks that died (the gateway is unready while above 0).",
                one(len(status.failed_tasks)),
            ),
            *_connector_families(status.connectors),
            Family(
                "edge_uptime_seconds",
                "gauge",
                "Seconds since start.",
                one(round(status.uptime_s, 1)),
            ),
        ]
    )


def _connector_families(connectors: tuple[dict[str, Any], ...]) -> list[Family]:
    def each(key: str) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        return [
            ((("connector", c["name"]), ("kind", c["kind"])), float(c[key])) for c in connectors
        ]

    errors = [
        ((("connector", c["name"]), ("reason", reason)), n)
        for c in connectors
        for reason, n in c["errors"].items()
    ]
    return [
        Family(
            "edge_connector_connected",
            "gauge",
            "1 if the connector is connected.",
            each("connected"),
        ),
        Family(
            "edge_connector_values_total",
            "counter",
            "Values the connector produced.",
            each("values_total"),
        ),
        Family(
            "edge_connector_readings_total",
            "counter",
            "Readings the connector produced.",
            each("readings_total"),
        ),
        Family(
            "edge_connector_errors_total",
            "counter",
            "Connector problems by reason (docs/connectors.md).",
            errors,
        ),
    ]
