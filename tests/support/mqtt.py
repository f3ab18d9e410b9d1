"""A plain paho publisher for tests: publish QoS 1 and wait until the broker acknowledged."""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.waiting import wait_until


class Publisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str = "",
        *,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        if username:
            self.client.username_pw_set(username, password)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self._connected = threading.Event()
        self.refused: str | None = None
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        # Counted here, not asked of each MQTTMessageInfo: one published while the client was
        # disconnected reports an error there although paho sends it on reconnect.
        self.acked = 0
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        self.pending: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self._connected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # Called inside paho's `except OSError`: a refused TLS handshake, a closed port.
        self.refused = f"connection failed: {sys.exc_info()[1]}"

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        # TLS 1.3: the server checks the client's certificate after the client's side of the
        # handshake is done, so a refusal arrives as the connection closing before CONNACK.
        if not self._connected.is_set() and self.refused is None:
            self.refused = f"disconnected before CONNACK: {reason}"

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, p: Any) -> None:
        self.acked += 1  # paho's network thread is the only writer

    def wait_connected(self, timeout: float = 15) -> None:
        wait_until(lambda: self._connected.is_set() or self.refused, timeout, "MQTT connect")
        if self.refused:
            raise ConnectionRefusedError(self.refused)

    def publish(
        self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1, retain: bool = False
    ) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.pending.append(self.client.publish(topic, payload, qos=qos, retain=retain))

    def publish_all(
        self,
        messages: Iterable[tuple[str, bytes | str | dict[str, Any]]],
        rate_hz: float | None = None,
    ) -> None:
        start = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if rate_hz:
                # Paced publishing stands in for devices with a fixed sampling rate.
                delay = start + i / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.publish(topic, payload)

    def wait_acked(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.acked >= len(self.pending),
            timeout,
            f"PUBACK for {len(self.pending)} messages",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def forget_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session, so the broker stops queueing messages for a client that is gone
    for good (a test's gateway)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        wait_until(connected.is_set, 15, f"clean connect of {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
