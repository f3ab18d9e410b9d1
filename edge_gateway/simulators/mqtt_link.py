"""One paho-mqtt client whose socket I/O runs on an asyncio event loop, without a paho thread.

paho's external-loop hooks (`on_socket_open/close/register_write/unregister_write` plus
`loop_read/loop_write/loop_misc`, as in paho's `examples/loop_asyncio.py`) let thousands of
clients share one event loop. The only blocking step left in paho is `reconnect()` (name lookup
and TCP connect), so it runs in a worker thread; while it does, the loop does not touch the
client, and the loop takes the socket over once the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class LinkConnectError(ConnectionError):
    """The broker could not be reached or refused the connection."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 60
    connect_timeout_s: float = 10.0
    # paho keeps unacknowledged QoS>0 messages; bound them so a stalled broker cannot eat memory.
    max_queued_messages: int = 100
    tls_context: ssl.SSLContext | None = None  # mqtts: the handshake runs in reconnect()


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttLink:
    """Connection of one device. Every method must be called on the event loop's thread.

    `on_lost` fires when an established connection ends without `close()` (broker gone,
    keepalive timeout, `drop()`); a failed `connect()` raises instead.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        loop: asyncio.AbstractEventLoop,
        executor: Executor,
        will: Will | None = None,
        on_connected: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
        on_acked: Callable[[int], None] = lambda mid: None,
    ) -> None:
        self.settings = settings
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._executor = executor
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_acked = on_acked
        self._sock: Any = None
        self._writer_added = False
        self._flush_scheduled = False
        self._in_worker = False
        self._up = False
        self._closing = False
        self._connack: asyncio.Future[ReasonCode | None] | None = None
        self._closed: asyncio.Future[None] | None = None

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        if settings.tls_context is not None:
            client.tls_set_context(settings.tls_context)
        client.connect_timeout = settings.connect_timeout_s
        client.max_queued_messages_set(settings.max_queued_messages)
        client.on_connect = self._handle_connect
        client.on_publish = self._handle_publish
        client.on_socket_open = self._handle_socket_open
        client.on_socket_close = self._handle_socket_close
        client.on_socket_register_write = self._handle_register_write
        client.on_socket_unregister_write = self._handle_unregister_write
        # Only records the parameters; no I/O until reconnect().
        client.connect_async(settings.host, settings.port, settings.keepalive_s)
        self._client = client

    @property
    def connected(self) -> bool:
        return self._up

    @property
    def connecting(self) -> bool:
        return self._connack is not None

    async def connect(self) -> None:
        """Open the TCP connection and wait for a successful CONNACK; raises LinkConnectError."""
        if self._sock is not None or self._in_worker:
            raise RuntimeError(f"{self.settings.client_id}: connect() while already connected")
        self._closing = False
        connack: asyncio.Future[ReasonCode | None] = self._loop.create_future()
        self._connack = connack
        try:
            await self._open_socket()
            async with asyncio.timeout(self.settings.connect_timeout_s):
                failure = await connack
        except TimeoutError:
            self.drop()
            raise LinkConnectError("no CONNACK within the connect timeout") from None
        except BaseException:
            connack.cancel()  # nobody will read it: keep asyncio from reporting it
            self.drop()
            raise
        finally:
            self._connack = None
        if failure is not None:
            self.drop()
            raise LinkConnectError(f"broker refused the connection: {failure}")

    async def _open_socket(self) -> None:
        self._in_worker = True
        try:
            attempt = self._loop.run_in_executor(self._executor, self._client.reconnect)
            try:
                await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # A socket opened after the caller gave up would leak: let the worker finish,
                # then take the socket over so that the caller's cleanup closes it.
                await asyncio.wait([attempt])
                raise
        except OSError as exc:  # refused, unreachable, name lookup failed, timed out
            raise LinkConnectError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._in_worker = False
            self._adopt_socket()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """The message id, or None when paho's queue is full or the link is down."""
        if not self._up:
            return None
        info = self._client.publish(topic, payload, qos, retain)
        return info.mid if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def drop(self) -> None:
        """Cut the connection without DISCONNECT, as a device losing power or network would;
        the broker then publishes the last will. Fires `on_lost` if the link was up."""
        if self._in_worker:
            return  # the worker owns the client; connect() drops it if asked to stop
        sock = self._client.socket()
        if sock is None:
            return
        if isinstance(sock, socket.socket):
            # OSError: already reset by the peer, and closing below is all that is left.
            with contextlib.suppress(OSError):
                # Close with a TCP reset rather than a FIN: the broker sees the connection fail
                # at once (a half-closed socket can linger there), and no DISCONNECT goes out.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                sock.shutdown(socket.SHUT_RD)
        # After SHUT_RD reads return end-of-file, so paho sees a lost connection and closes the
        # socket through its own path (and our on_socket_close), keeping its state consistent.
        for _ in range(1000):
            if self._client.socket() is None:
                break
            self._client.loop_read()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Clean DISCONNECT (the broker discards the will), then wait for the socket to close."""
        if self._sock is None:
            return
        self._closing = True
        self._up = False
        self._closed = self._loop.create_future()
        self._client.disconnect()
        try:
            async with asyncio.timeout(timeout_s):
                await self._closed
        except TimeoutError:
            logger.warning("disconnect_timeout", extra={"client_id": self.settings.client_id})
            self.drop()

    def misc(self) -> None:
        """Keepalive: paho sends PINGREQ and notices a dead broker here. Call about every second."""
        if self._sock is not None and not self._in_worker:
            self._client.loop_misc()

    # paho callbacks (loop thread, except socket hooks during reconnect() in the worker)

    def _adopt_socket(self) -> None:
        sock = self._client.socket()
        if sock is None:
            return
        self._sock = sock
        self._loop.add_reader(sock, self._on_readable)
        self._flush()  # CONNECT was queued while the worker owned the client

    def _on_readable(self) -> None:
        self._client.loop_read()
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            # Decrypted bytes wait inside the TLS layer, where the event loop cannot see them.
            self._loop.call_soon(self._on_readable)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._sock is None:
            return
        self._client.loop_write()
        if self._client.want_write() and self._sock is not None and not self._writer_added:
            # The kernel buffer is full: write again when the socket is writable.
            self._loop.add_writer(self._sock, self._flush)
            self._writer_added = True

    def _handle_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        pass  # adopted by _adopt_socket on the loop thread once reconnect() returned

    def _handle_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            return  # inside reconnect() in the worker: _adopt_socket flushes
        if not self._flush_scheduled:
            # Deferred rather than written here: paho calls this while it holds its own locks,
            # and a batch of publishes then goes out in one write.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _handle_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._writer_added and self._sock is not None:
            self._loop.remove_writer(self._sock)
            self._writer_added = False

    def _handle_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != self._loop_thread or self._sock is None:
            return
        self._loop.remove_reader(self._sock)
        if self._writer_added:
            self._loop.remove_writer(self._sock)
            self._writer_added = False
        self._sock = None
        was_up = self._up
        self._up = False
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(LinkConnectError("connection closed before CONNACK"))
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if was_up and not self._closing:
            self._on_lost()

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        failed = reason_code.is_failure
        if not failed:
            self._up = True
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason_code if failed else None)
        if not failed:
            self._on_connected()

    def _handle_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._on_acked(mid)
