"""MQTT -> buffer. Subscribes to telemetry and status, routes each message (reading, status or
dead letter), appends to the durable buffer in batched transactions and only then acknowledges
the messages to the broker (`manual_ack`), so the broker redelivers anything not yet durable."""

from __future__ import annotations

import logging
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_gateway.buffer import Buffer
from edge_gateway.routing import MessageRouter
from edge_gateway.settings import EdgeSettings, MqttEndpoint
from edge_gateway.stats import GatewayCounters
from protocol import topics

log = logging.getLogger("edge.bridge")

# Bounded so a slow disk pushes back on paho's thread (and so on the broker), not on memory.
INBOX_MAX = 20_000
_BUFFER_RETRY_MAX_S = 5.0
_DROP_LOG_EVERY_S = 10.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ms: int


class Bridge:
    def __init__(
        self,
        settings: EdgeSettings,
        buffer: Buffer,
        router: MessageRouter,
        counters: GatewayCounters,
        *,
        on_appended: Callable[[], None] = lambda: None,
        endpoint: MqttEndpoint | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`endpoint`: where and as whom to connect (default: as the settings say);
        `tls_context`: for an mqtts:// endpoint, from edge_gateway.mqtt_tls."""
        self._settings = settings
        self._buffer = buffer
        self._router = router
        self._counters = counters
        self._on_appended = on_appended
        self._inbox: queue.Queue[_Inbound | None] = queue.Queue(maxsize=INBOX_MAX)
        self._stopping = threading.Event()
        self.subscribed = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="bridge-writer", daemon=True)
        self._last_drop_log = 0.0
        endpoint = endpoint or settings.mqtt_endpoint()
        if endpoint.tls and tls_context is None:
            raise ValueError(f"{endpoint.url} needs a TLS context")  # never plaintext instead
        self._address = (endpoint.host, endpoint.port)
        self._broker_url = endpoint.url
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.bridge_client_id,
            clean_session=False,  # a persistent session: the broker queues QoS 1 while we are away
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls and tls_context is not None:
            client.tls_set_context(tls_context)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()
        host, port = self._address
        self._client.connect_async(host, port, keepalive=self._settings.mqtt_keepalive_s)
        self._client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Settle what was received: commit and acknowledge it, then disconnect."""
        self._drain(timeout)
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        # Anything that arrived after the drain is committed but cannot be acknowledged any more;
        # the broker redelivers it and the hub's primary key absorbs the repeat.
        self._inbox.put(None)
        self._writer.join(timeout)
        self.subscribed.clear()

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._inbox.empty() and time.monotonic() < deadline:
            time.sleep(0.01)  # polls a condition (the inbox empties), bounded by the deadline

    # -- paho callbacks (paho's network thread) --------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            log.error("mqtt_connect_failed", extra={"reason": str(reason), "broker": self._url()})
            return
        log.info(
            "mqtt_connected",
            extra={"broker": self._url(), "session_present": flags.session_present},
        )
        client.subscribe([(topics.MQTT_TELEMETRY_FILTER, 1), (topics.MQTT_STATUS_FILTER, 1)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError`, so the error (refused, unreachable, a
        # TLS certificate the CA does not vouch for) is the one being handled.
        error = sys.exc_info()[1]
        log.error(
            "mqtt_connect_failed",
            extra={"broker": self._url(), "error": f"{type(error).__name__}: {error}"[:300]},
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("mqtt_subscribe_failed", extra={"reasons": ",".join(map(str, reasons))})
            return
        self._counters.mqtt_connected = True
        self.subscribed.set()
        log.info("mqtt_subscribed", extra={"filters": "telemetry,status"})

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        self._counters.mqtt_connected = False
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("mqtt_disconnected", extra={"reason": str(reason), "broker": self._url()})

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(
            _Inbound(message.topic, bytes(message.payload), message.mid, message.qos, now_ms())
        )

    def _url(self) -> str:
        return self._broker_url

    # -- writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        wait_s = self._settings.bridge_batch_wait_ms / 1000
        limit = self._settings.bridge_batch_max
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + wait_s
            done = False
            while len(batch) < limit:
                try:
                    item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            self._commit(batch)
            if done:
                return

    def _commit(self, batch: list[_Inbound]) -> None:
        routed = [self._router.route(m.topic, m.payload, m.received_ms) for m in batch]
        delay = 0.05
        while True:
            try:
                result = self._buffer.append([r.record for r in routed])
                break
            except Exception:  # disk full, I/O error: keep the batch, retry, never ack
                self._counters.buffer_errors_total += 1
                log.exception(
                    "buffer_append_failed", extra={"batch": len(batch), "retry_in_s": delay}
                )
                if self._stopping.wait(delay):
                    log.error("buffer_append_abandoned", extra={"batch": len(batch)})
                    return
                delay = min(delay * 2, _BUFFER_RETRY_MAX_S)
        # Durable now: acknowledge in the order received (MQTT-4.6.0-2).
        for message in batch:
            if message.qos > 0:
                self._client.ack(message.mid, message.qos)
        c = self._counters
        c.received_total += len(batch)
        for r in routed:
            if r.kind == "reading":
                c.readings_total += 1
            elif r.kind == "status":
                c.statuses_total += 1
            else:
                c.dead_lettered_total += 1
                log.warning(
                    "dead_letter",
                    extra={
                        "device": r.device_id or "-",
                        "reason": r.reason,
                        "error": r.record.headers[0][1].decode(),
                    },
                )
        if result.dropped:
            self._log_drop(result.dropped)
        self._on_appended()

    def _log_drop(self, dropped: int) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            stats = self._buffer.stats()
            log.warning(
                "buffer_full_dropped_oldest",
                extra={
                    "dropped": dropped,
                    "dropped_total": stats.dropped_total,
                    "max_bytes": stats.max_bytes,
                },
            )
