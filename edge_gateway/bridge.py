"""External broker -> buffer: a paho client subscribed to telemetry and status (and spBv1.0/#
with the Sparkplug host on, whose STATE it publishes and whose will it leaves) hands each message
to the intake (edge_gateway.intake) and acknowledges it (`manual_ack`) only once the intake has
committed it, so the broker redelivers anything not yet durable."""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_gateway.intake import Inbound, IntakeTarget, now_ms
from edge_gateway.settings import EdgeSettings, MqttEndpoint
from edge_gateway.sparkplug import topic as sparkplug_topic
from edge_gateway.sparkplug.host import Command, state_payload
from protocol import topics

log = logging.getLogger("edge.bridge")


class Bridge:
    def __init__(
        self,
        settings: EdgeSettings,
        target: IntakeTarget,
        *,
        endpoint: MqttEndpoint | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`endpoint`: where and as whom to connect (default: as the settings say);
        `tls_context`: for an mqtts:// endpoint, from edge_gateway.mqtt_tls."""
        self._settings = settings
        self._counters = target.counters
        self._stopping = threading.Event()
        self.subscribed = threading.Event()
        self._intake = target.intake(on_durable=self._ack, on_commands=self.publish)
        self._sparkplug = settings.sparkplug_enabled
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
        if self._sparkplug:
            # Sparkplug 3.0 host STATE: the will and the birth carry the same timestamp.
            self._state_topic = sparkplug_topic.state_topic(settings.sparkplug_host)
            self._state_ts = now_ms()
            client.will_set(
                self._state_topic, state_payload(False, self._state_ts), qos=1, retain=True
            )
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._intake.start()
        host, port = self._address
        self._client.connect_async(host, port, keepalive=self._settings.mqtt_keepalive_s)
        self._client.loop_start()

    def publish(self, commands: list[Command]) -> None:
        """Publish the Sparkplug host's commands (paho queues them while disconnected)."""
        for command in commands:
            self._client.publish(command.topic, command.payload, command.qos, command.retain)

    def stop(self, timeout: float = 10.0) -> None:
        """Settle what was received: commit and acknowledge it, then disconnect."""
        self._intake.drain(timeout)
        if self._sparkplug and self.subscribed.is_set():
            offline = state_payload(False, self._state_ts)
            self._client.publish(self._state_topic, offline, qos=1, retain=True).wait_for_publish(
                timeout
            )
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        # Anything that arrived after the drain is committed but cannot be acknowledged any more;
        # the broker redelivers it and the hub's primary key absorbs the repeat.
        self._intake.stop(timeout)
        self.subscribed.clear()

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
        filters = [(topics.MQTT_TELEMETRY_FILTER, 1), (topics.MQTT_STATUS_FILTER, 1)]
        if self._sparkplug:
            filters.append((sparkplug_topic.FILTER, 1))
            client.publish(
                self._state_topic, state_payload(True, self._state_ts), qos=1, retain=True
            )
        client.subscribe(filters)

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
        filters = "telemetry,status" + (",sparkplug" if self._sparkplug else "")
        log.info("mqtt_subscribed", extra={"filters": filters})

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
        token = (message.mid, message.qos) if message.qos > 0 else None
        self._intake.put(Inbound(message.topic, bytes(message.payload), now_ms(), token))

    def _url(self) -> str:
        return self._broker_url

    # -- intake writer thread --------------------------------------------------------------

    def _ack(self, tokens: list[object]) -> None:
        if self._stopping.is_set():
            return  # disconnected: the broker redelivers these
        for token in tokens:
            mid, qos = cast(tuple[int, int], token)  # as _on_message made it
            self._client.ack(mid, qos)
