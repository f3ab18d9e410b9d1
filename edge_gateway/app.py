"""Wires the gateway together: broker, bridge, buffer, forwarder, heartbeat, status server and
optional simulators. Construction does no I/O; `start()` and `stop()` do, in a fixed order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from edge_gateway.bridge import Bridge
from edge_gateway.broker import EmbeddedBroker
from edge_gateway.broker_auth import RefusalKind, RefusalLog
from edge_gateway.broker_intake import BrokerIntake
from edge_gateway.buffer import Buffer, SqliteBuffer
from edge_gateway.connectors.config import ConnectorsFile, load_connectors_file
from edge_gateway.connectors.runner import ConnectorSet
from edge_gateway.forwarder import Forwarder
from edge_gateway.http import Readiness, StatusServer, build_app
from edge_gateway.intake import IntakeTarget, now_ms
from edge_gateway.loop_wakeup import LoopWakeup
from edge_gateway.mqtt_security import MqttSecurity, anonymous_beyond_loopback, load_mqtt_security
from edge_gateway.routing import MessageRouter
from edge_gateway.runway import RunwayMeter
from edge_gateway.settings import EdgeSettings
from edge_gateway.simulators import SimulatorConfig, SimulatorStats, parse_types, run_simulators
from edge_gateway.sparkplug import topic as sparkplug_topic
from edge_gateway.sparkplug.host import Command, SparkplugHost, state_payload
from edge_gateway.stats import (
    GatewayCounters,
    GatewayStatus,
    RateMeter,
    SparkplugStatus,
    encode_edge_metrics,
)
from protocol import topics

log = logging.getLogger("edge.gateway")


def open_buffer(settings: EdgeSettings) -> Buffer:
    return SqliteBuffer(
        settings.buffer_path,
        max_bytes=settings.buffer_max_bytes,
        synchronous=settings.buffer_synchronous,
    )


class TaskSupervisor:
    """The gateway's background tasks. Each is meant to run until the gateway stops, so one that
    raises, or returns or is cancelled before `stopping`, has failed: it is logged and kept, and
    the gateway reports itself unready instead of running on without it."""

    def __init__(self) -> None:
        self.stopping = False
        self.failed: dict[str, str] = {}  # task name -> why it ended
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: self._done(name, t))
        self._tasks[name] = task

    def get(self, name: str) -> asyncio.Task[None] | None:
        return self._tasks.get(name)

    def _done(self, name: str, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            error = f"{type(exc).__name__}: {exc}"[:300]
        elif self.stopping:
            return
        else:
            error = "cancelled" if task.cancelled() else "returned while the gateway was running"
        self.failed[name] = error
        log.error("task_failed", extra={"task": name, "error": error}, exc_info=exc)


class EdgeGateway:
    def __init__(
        self,
        settings: EdgeSettings,
        *,
        buffer_factory: Callable[[EdgeSettings], Buffer] = open_buffer,
        security: MqttSecurity | None = None,
        connectors: ConnectorsFile | None = None,
    ) -> None:
        self.settings = settings
        self._buffer_factory = buffer_factory
        # Loaded by `iot-edge run` before the gateway is made (bad files exit 2 there), else at
        # start().
        self._security = security
        self._connectors_config = connectors  # likewise
        self.connectors = ConnectorSet(
            connectors or ConnectorsFile(), settings.site, settings.gateway_id
        )
        endpoint = settings.mqtt_endpoint()
        self._mqtt_address = f"{endpoint.host}:{endpoint.port}"
        self.counters = GatewayCounters()
        self.sparkplug = (
            SparkplugHost(reorder_timeout_ms=settings.sparkplug_reorder_timeout_ms)
            if settings.sparkplug_enabled
            else None
        )
        self._state_ts = now_ms()  # the Sparkplug STATE births and death carry the same one
        self.router = MessageRouter(
            settings.gateway_id,
            max_past_ms=settings.max_ts_past_s * 1000,
            max_future_ms=settings.max_ts_future_s * 1000,
            kafka_topics=topics.KafkaTopics(settings.kafka_topic_prefix),
            sparkplug=self.sparkplug,
        )
        self.buffer: Buffer | None = None
        self.broker: EmbeddedBroker | None = None
        self.bridge: Bridge | None = None  # external broker
        self.intake: BrokerIntake | None = None  # embedded broker
        self.forwarder: Forwarder | None = None
        self.simulator_stats = SimulatorStats()
        self._simulator_types = parse_types(settings.simulators)
        self._server: StatusServer | None = None
        self.tasks = TaskSupervisor()
        self._stop_forwarder = asyncio.Event()
        self._stop_simulators = asyncio.Event()
        self._stop_heartbeat = asyncio.Event()
        self._started_s = time.monotonic()
        self._received_rate = RateMeter()
        self._forwarded_rate = RateMeter()
        self._runway = RunwayMeter()

    @property
    def http_port(self) -> int | None:
        return self._server.port if self._server else None

    def _count_refusal(self, kind: RefusalKind) -> None:
        c = self.counters
        if kind == "connect":
            c.mqtt_connect_refused_total += 1
        elif kind == "publish":
            c.mqtt_publish_refused_total += 1
        else:
            c.mqtt_subscribe_refused_total += 1

    async def start(self) -> None:
        s = self.settings
        self._started_s = time.monotonic()
        if self._security is None:
            self._security = await asyncio.to_thread(load_mqtt_security, s)
        security = self._security
        if self._connectors_config is None and s.connectors_file is not None:
            loaded = await asyncio.to_thread(load_connectors_file, s.connectors_file)
            self.connectors = ConnectorSet(loaded, s.site, s.gateway_id)
        self.buffer = await asyncio.to_thread(self._buffer_factory, s)
        stats = self.buffer.stats()
        log.info(
            "buffer_opened",
            extra={
                "path": str(s.buffer_path),
                "depth": stats.depth,
                "bytes": stats.bytes,
                "max_bytes": stats.max_bytes,
            },
        )
        self._server = StatusServer(
            build_app(self.status, self.readiness), s.http_host, s.http_port
        )
        await self._server.start()
        log.info("http_listening", extra={"port": self._server.port})
        loop = asyncio.get_running_loop()
        forwarder = self.forwarder = Forwarder(s, self.buffer, self.counters)
        target = IntakeTarget(
            self.buffer,
            self.router,
            self.counters,
            batch_max=s.bridge_batch_max,
            on_appended=LoopWakeup(loop, forwarder.notify),
        )
        if s.embedded_broker:
            await self._start_embedded(security, target)
        else:
            self.bridge = Bridge(
                s, target, endpoint=security.gateway_endpoint(s), tls_context=security.client_tls
            )
            self.bridge.start()
        if self.connectors:
            self.connectors.start(target, self.tasks.spawn)
        self.tasks.spawn("forwarder", forwarder.run(self._stop_forwarder))
        self.tasks.spawn("heartbeat", self._heartbeat())
        if self._simulator_types:
            self.tasks.spawn("simulators", self._simulate())

    async def _start_embedded(self, security: MqttSecurity, target: IntakeTarget) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self.intake = BrokerIntake(target, on_commands=lambda c: self._publish_embedded(loop, c))
        self.intake.start(loop)
        self.broker = EmbeddedBroker(
            s.mqtt_bind,
            s.mqtt_port,
            security.policy,
            RefusalLog(self._count_refusal),
            security.tls_listener,
            intake=self.intake,
        )
        await self.broker.start()
        self.counters.mqtt_connected = True
        await self._publish_state(online=True)
        exposed = anonymous_beyond_loopback(s)
        if exposed:
            log.warning(
                "mqtt_anonymous_access",
                extra={
                    "listeners": ",".join(exposed),
                    "hint": "anyone on the network can publish; set a password file and "
                    "EDGE_MQTT_ALLOW_ANONYMOUS=false",
                },
            )

    def _publish_embedded(self, loop: asyncio.AbstractEventLoop, commands: list[Command]) -> None:
        """The Sparkplug host's commands, from the intake's writer thread onto the broker."""
        broker = self.broker
        if broker is None or loop.is_closed():
            return
        for c in commands:
            asyncio.run_coroutine_threadsafe(
                broker.publish(c.topic, c.payload, c.qos, c.retain), loop
            )

    async def _publish_state(self, *, online: bool) -> None:
        """The host's retained Sparkplug STATE on the embedded broker (the bridge does its own)."""
        if self.sparkplug is None or self.broker is None:
            return
        state_topic = sparkplug_topic.state_topic(self.settings.sparkplug_host)
        await self.broker.publish(
            state_topic, state_payload(online, self._state_ts), qos=1, retain=True
        )
        log.info("sparkplug_state", extra={"topic": state_topic, "online": online})

    async def stop(self) -> None:
        """Settle everything in flight: simulators, then MQTT intake, then the last Kafka batch."""
        log.info("gateway_stopping")
        self.tasks.stopping = True
        self._stop_simulators.set()
        await self._join("simulators", timeout=10)
        await self.connectors.stop(self._join)
        if self.bridge is not None:
            await asyncio.to_thread(self.bridge.stop)
        if self.intake is not None:
            # While the devices are still connected, so the PUBACKs reach them.
            await asyncio.to_thread(self.intake.drain, 10)
        self._stop_forwarder.set()
        await self._join("forwarder", timeout=self.settings.kafka_request_timeout_ms / 1000 + 15)
        self._stop_heartbeat.set()
        await self._join("heartbeat", timeout=5)
        if self.broker is not None:
            await self._publish_state(online=False)
            await self.broker.stop()
            self.counters.mqtt_connected = False
        if self.intake is not None:
            await asyncio.to_thread(self.intake.stop)
        if self._server is not None:
            await self._server.stop()
        if self.buffer is not None:
            final = self.buffer.stats()
            await asyncio.to_thread(self.buffer.close)
            log.info(
                "gateway_stopped",
                extra={
                    "buffer_depth": final.depth,
                    "forwarded_total": self.counters.forwarded_total,
                },
            )

    async def _join(self, name: str, timeout: float) -> None:
        task = self.tasks.get(name)
        if task is None:
            return
        # wait(), not awaiting the task: a task that failed was reported when it ended, and its
        # exception must not stop the rest of the shutdown (the buffer still has to be closed).
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            log.warning("task_stop_timeout", extra={"task": name, "timeout_s": timeout})
            task.cancel()
            await asyncio.wait({task})

    async def _simulate(self) -> None:
        s = self.settings
        assert self._security is not None
        endpoint = self._security.gateway_endpoint(s)
        source = self.bridge or self.intake
        if source is not None:
            # Devices start once the bridge listens, so a fresh broker loses nothing to nobody.
            await asyncio.to_thread(source.subscribed.wait, 30)
        config = SimulatorConfig(
            host=endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            tls_context=self._security.client_tls,
            site=s.site,
            types=self._simulator_types,
            count_per_type=s.simulator_count_per_type,
            rate_hz=s.simulator_rate_hz,
            seed=s.simulator_seed,
            anomaly_probability=s.simulator_anomaly_probability,
        )
        await run_simulators(config, self._stop_simulators, self.simulator_stats)

    async def _heartbeat(self) -> None:
        interval = self.settings.metrics_interval_s
        while not self._stop_heartbeat.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_heartbeat.wait(), interval)
            status = self.status()
            log.info(
                "heartbeat",
                extra={
                    "received": status.counters.received_total,
                    "forwarded": status.counters.forwarded_total,
                    "buffered": status.buffer.depth,
                    "dropped": status.buffer.dropped_total,
                    "dead_lettered": status.counters.dead_lettered_total,
                    "kafka": "up" if status.kafka_connected else "down",
                },
            )
            producer = self.forwarder.producer if self.forwarder else None
            if producer is None:
                continue  # heartbeats are live signals: not buffered while Kafka is away
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(
                        self.router.topics.edge_metrics,
                        encode_edge_metrics(status.to_edge_metrics()),
                        key=self.settings.gateway_id.encode(),
                    ),
                    timeout=interval,
                )
            except Exception as exc:  # noqa: BLE001 - a lost heartbeat is logged, never fatal
                log.warning("heartbeat_send_failed", extra={"error": type(exc).__name__})

    def status(self) -> GatewayStatus:
        assert self.buffer is not None
        buffer = self.buffer.stats()
        now_s = time.monotonic()
        c = self.counters
        s = self.settings
        return GatewayStatus(
            gateway_id=s.gateway_id,
            site=s.site,
            now_ms=now_ms(),
            uptime_s=now_s - self._started_s,
            mqtt_mode="embedded" if s.embedded_broker else "external",
            mqtt_address=self._mqtt_address,
            mqtt_connected=c.mqtt_connected,
            kafka_bootstrap=s.kafka_bootstrap,
            kafka_connected=c.kafka_connected,
            kafka_last_error=c.kafka_last_error,
            buffer=buffer,
            counters=c,
            dead_lettered_by_reason=dict(self.router.dead_letters_by_reason),
            seq_gaps_total=self.router.seq.gaps_total,
            seq_resets_total=self.router.seq.resets_total,
            received_rate=self._received_rate.rate(now_s, c.received_total),
            forwarded_rate=self._forwarded_rate.rate(now_s, c.forwarded_total),
            failed_tasks=tuple(sorted(self.tasks.failed)),
            sparkplug=None
            if self.sparkplug is None
            else SparkplugStatus(
                host_id=s.sparkplug_host,
                nodes_online=self.sparkplug.online_nodes(),
                rebirths_requested_total=self.sparkplug.rebirths_requested_total,
                by_reason=dict(self.sparkplug.counts),
            ),
            buffer_runway_s=self._runway.runway(
                now_s,
                buffer.appended_bytes_total,
                buffer.acked_bytes_total,
                buffer.max_bytes - buffer.bytes,
            ),
            connectors=self.connectors.snapshots(now_s),
        )

    def readiness(self) -> Readiness:
        checks = {
            "buffer": self.buffer is not None,
            "broker": self.broker is None or self.broker.running,
            "mqtt_subscribed": any(
                source is not None and source.subscribed.is_set()
                for source in (self.bridge, self.intake)
            ),
            "tasks": not self.tasks.failed,
        }
        return Readiness(all(checks.values()), checks)
