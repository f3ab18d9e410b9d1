"""Where connectors hand their readings (as JSON telemetry messages) and their devices' metadata
(`iot.device-metadata` records): the gateway's intake, so both are buffered in order."""

from __future__ import annotations

import logging
import queue
from typing import Protocol

from pydantic import ValidationError

from edge_gateway.connectors.config import ModbusDevice, OpcUaDevice
from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.metadata import Discovered, device_document
from edge_gateway.connectors.readings import telemetry_message
from edge_gateway.device_metadata import metadata_record
from edge_gateway.intake import Inbound, now_ms
from protocol.topics import KafkaTopics

log = logging.getLogger("edge.connectors")


class InboxPort(Protocol):
    def put_nowait(self, message: Inbound) -> None: ...


class ReadingSink:
    """Turns one device's values sampled together into one message on the intake's inbox. The
    buffer commit is the durability point, as for QoS 0 MQTT messages: nothing to acknowledge."""

    def __init__(
        self,
        inbox: InboxPort,
        site: str,
        *,
        gateway_id: str = "gateway",
        kafka_topics: KafkaTopics | None = None,
    ) -> None:
        self._inbox = inbox
        self._site = site
        self._gateway_id = gateway_id
        self._topics = kafka_topics or KafkaTopics()

    def report_metadata(
        self,
        health: ConnectorHealth,
        device: ModbusDevice | OpcUaDevice,
        source: str,
        discovered: Discovered | None = None,
    ) -> bool:
        """The device's metadata from the configuration (over what the server said, if
        anything), as one `iot.device-metadata` record (source `modbus` or `opcua`). False if it
        could not be queued."""
        try:
            record = metadata_record(
                site=self._site,
                device_id=device.device_id,
                gateway_id=self._gateway_id,
                ts_ms=now_ms(),
                metadata=device_document(device, discovered),
                source=source,
                device_type=device.type,
                kafka_topics=self._topics,
            )
        except ValidationError as exc:  # the config model has the same limits: a bug if here
            health.count("metadata_refused", str(exc).splitlines()[0])
            log.error(
                "connector_metadata_refused",
                extra={"connector": health.name, "device": device.device_id, "error": str(exc)},
            )
            return False
        try:
            self._inbox.put_nowait(Inbound("", b"", record.created_ms, metadata=record))
        except queue.Full:
            health.count("intake_full", "the gateway's intake is full")
            log.warning(
                "connector_metadata_dropped",
                extra={
                    "connector": health.name,
                    "device": device.device_id,
                    "reason": "intake_full",
                },
            )
            return False
        return True

    def emit(
        self,
        health: ConnectorHealth,
        device_id: str,
        device_type: str | None,
        values: dict[str, float | bool],
        ts_ms: int,
    ) -> None:
        if not values:
            return
        topic, payload = telemetry_message(self._site, device_id, device_type, values, ts_ms)
        try:
            self._inbox.put_nowait(Inbound(topic, payload, now_ms()))
        except queue.Full:
            health.count("intake_full", "the gateway's intake is full")
            log.warning(
                "connector_reading_dropped",
                extra={"connector": health.name, "device": device_id, "reason": "intake_full"},
            )
            return
        health.values_total += len(values)
        health.readings_total += 1
