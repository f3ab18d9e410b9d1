"""The embedded MQTT broker (amqtt, MQTT 3.1.1), used when EDGE_MQTT_URL is unset."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from edge_gateway.broker_auth import ConnectPolicy, EdgeAuthPlugin, RefusalLog, TopicGate
from edge_gateway.broker_intake import BrokerIntake
from edge_gateway.mqtt_security import TlsListener

log = logging.getLogger("edge.broker")

_TLS_LISTENER = "tls"


def broker_config(
    bind: str, port: int, policy: ConnectPolicy, refusals: RefusalLog, *, tls: bool = False
) -> dict[str, Any]:
    plugins: dict[str, Any] = {
        f"{EdgeAuthPlugin.__module__}.EdgeAuthPlugin": {"policy": policy, "refusals": refusals}
    }
    listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{bind}:{port}"}}
    if tls:
        # An "external" listener: the gateway accepts TLS connections itself, with its own
        # SSLContext (amqtt's own TLS listener would only ask for client certificates, not
        # require them), and hands each one to the broker.
        listeners[_TLS_LISTENER] = {"type": "external", "bind": "external"}
    # No packet/event logger or $SYS plugins: they cost CPU on every message.
    return {"listeners": listeners, "plugins": plugins}


class _AclBroker(Broker):  # type: ignore[misc]  # amqtt is untyped here
    """amqtt with the topic ACL checked inline, and each session's publishes taken by the
    gateway's intake (edge_gateway.broker_intake) instead of crossing a loopback client.

    amqtt runs each topic plugin check as an asyncio task of its own. With any topic plugin that
    made delivery fall behind the PUBACKs (measured: a 2,000-message burst was acknowledged in
    0.7 s), and amqtt drops the undelivered, already acknowledged messages of a client that
    disconnects: half the burst was lost. The check is plain CPU work, so it runs in place of
    amqtt's plugin dispatch (amqtt is pinned; tests/integration/test_edge_mqtt_security.py
    catches a change)."""

    def __init__(
        self, config: dict[str, Any], gate: TopicGate, intake: BrokerIntake | None
    ) -> None:
        super().__init__(config)
        self._gate = gate
        self._intake = intake

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        return self._gate.allows(session, topic, action)

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, address: str, port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        handler, session = await super()._initialize_client_session(reader, writer, address, port)
        if self._intake is not None:
            self._intake.attach(handler, self)
        return handler, session

    # -- BrokerHooks, for the sessions' intake -----------------------------------------------

    def allows_publish(self, handler: BrokerProtocolHandler, topic: str) -> bool:
        return self._gate.allows(handler.session, topic, Action.PUBLISH)

    async def relay(
        self, handler: BrokerProtocolHandler, topic: str, data: bytes, qos: int, retain: bool
    ) -> None:
        """Deliver a publish the intake took to other subscribers, as amqtt would have."""
        if retain:
            await self.retain_message(handler.session, topic, data, qos)
        if self._subscriptions:
            # Broker's own method: this override would hand the message to the intake again.
            await Broker._broadcast_message(self, handler.session, topic, data)

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        # What still takes amqtt's own path: wills, QoS 2, messages the broker makes itself.
        if self._intake is not None and topic is not None and data is not None:
            await self._intake.offer(topic, bytes(data))
        await super()._broadcast_message(session, topic, data, force_qos)


class EmbeddedBroker:
    def __init__(
        self,
        bind: str,
        port: int,
        policy: ConnectPolicy,
        refusals: RefusalLog,
        tls: TlsListener | None = None,
        intake: BrokerIntake | None = None,
    ) -> None:
        """`intake`: where devices' telemetry and status go (None: only to subscribers)."""
        self.address = f"{bind}:{port}"
        self._config = broker_config(bind, port, policy, refusals, tls=tls is not None)
        self._policy = policy
        self._gate = TopicGate(policy, refusals)
        self._tls = tls
        self._intake = intake
        self._broker: Broker | None = None
        self._tls_server: asyncio.Server | None = None

    async def start(self) -> None:
        self._broker = _AclBroker(self._config, self._gate, self._intake)
        await self._broker.start()
        if self._tls is not None:
            self._tls_server = await asyncio.start_server(
                self._tls_connected,
                self._tls.bind,
                self._tls.port,
                ssl=self._tls.context,
                reuse_address=True,
            )
        log.info(
            "broker_started",
            extra={
                "listen": self.address,
                "tls_listen": f"{self._tls.bind}:{self._tls.port}" if self._tls else "-",
                "client_certificates": bool(self._tls and self._tls.client_certificates),
                "password_file": self._policy.users is not None,
                "anonymous": self._policy.allow_anonymous,
                "acl": self._policy.acl is not None,
            },
        )

    async def _tls_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._broker is None:
            writer.close()
            return
        await self._broker.external_connected(
            StreamReaderAdapter(reader), StreamWriterAdapter(writer), _TLS_LISTENER
        )

    async def stop(self) -> None:
        if self._tls_server is not None:
            self._tls_server.close()
            self._tls_server = None
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
            log.info("broker_stopped")

    async def publish(self, topic: str, data: bytes, qos: int = 0, retain: bool = False) -> None:
        """A message of the gateway's own (Sparkplug STATE, NCMD) to the broker's subscribers."""
        if self._broker is None:
            return
        if retain:
            await self._broker.retain_message(None, topic, data, qos)
        # Broker's own method: the gateway's override would offer it to the intake.
        await Broker._broadcast_message(self._broker, None, topic, data, qos)

    @property
    def running(self) -> bool:
        return self._broker is not None and self._broker.transitions.state == "started"


def hash_password(password: str) -> str:
    from pwdlib import PasswordHash  # amqtt's own dependency; argon2 is what it verifies

    return PasswordHash.recommended().hash(password)


def add_passwd_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "passwd",
        help="add or replace a user in the embedded broker's password file",
        description="Add or replace USER in FILE (argon2 hash), the file EDGE_MQTT_PASSWORD_FILE "
        "points at. The password is read from the prompt, or from stdin with --stdin.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("user")
    parser.add_argument("--stdin", action="store_true", help="read the password from stdin")
    parser.set_defaults(func=_passwd)


def _passwd(args: argparse.Namespace) -> int:
    import sys

    if ":" in args.user:
        print("user names cannot contain ':'", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass()
    if not password:
        print("empty password refused", file=sys.stderr)
        return 2
    path: Path = args.file
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.startswith(f"{args.user}:")]
    kept.append(f"{args.user}:{hash_password(password)}")
    path.write_text("\n".join(kept) + "\n")
    path.chmod(0o600)
    print(f"{'updated' if len(kept) == len(lines) else 'added'} user {args.user} in {path}")
    return 0
