"""Where connectors hand their readings: the gateway's intake, as JSON telemetry messages."""

from __future__ import annotations

import logging
import queue
from typing import Protocol

from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.readings import telemetry_message
from edge_gateway.intake import Inbound, now_ms

log = logging.getLogger("edge.connectors")


class InboxPort(Protocol):
    def put_nowait(self, message: Inbound) -> None: ...


class ReadingSink:
    """Turns one device's values sampled together into one message on the intake's inbox. The
    buffer commit is the durability point, as for QoS 0 MQTT messages: nothing to acknowledge."""

    def __init__(self, inbox: InboxPort, site: str) -> None:
        self._inbox = inbox
        self._site = site

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
