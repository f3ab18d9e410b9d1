"""Publishes the simulated fleet over MQTT: one connection per device, all on one event loop.

Simulated time is the wall clock. Each device publishes at `rate_hz`, with the devices' phases
spread evenly over the period so that the broker sees a steady aggregate rate rather than a
burst every second. Connections open with bounded concurrency and come back with jittered
exponential backoff when the broker goes away; a `dropout` fault cuts a device's connection
without DISCONNECT (the broker publishes its `offline` will) and reconnects when it ends.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import random
import resource
import ssl
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edge_gateway.simulators.anomalies import AnomalyKind, AnomalyRecord
from edge_gateway.simulators.catalog import ALL_TYPES
from edge_gateway.simulators.device import SimulatedDevice
from edge_gateway.simulators.fleet import FleetSpec, build_fleet, parse_types
from edge_gateway.simulators.mqtt_link import LinkConnectError, LinkSettings, MqttLink, Will
from protocol.topics import status_topic, telemetry_topic

__all__ = [
    "ALL_TYPES",
    "SimulatorConfig",
    "SimulatorRunner",
    "SimulatorStats",
    "parse_types",
    "run_simulators",
]

logger = logging.getLogger(__name__)

# Devices handled per scheduler pass before yielding to the event loop.
_MAX_BATCH = 500
_KEEPALIVE_INTERVAL_S = 1.0
_MAX_CATCH_UP_MS = 1000.0


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    # mqtts: made by edge_gateway.mqtt_tls.client_context; None = plaintext.
    tls_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    site: str = "site-1"
    types: tuple[str, ...] = ALL_TYPES
    count_per_type: int = 1
    rate_hz: float = 1.0
    seed: int = 42
    anomaly_probability: float = 0.001
    qos: int = 1
    max_messages_per_device: int | None = None  # stop after this many readings per device
    max_concurrent_connects: int = 50
    keepalive_s: int = 60
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        self.fleet_spec()  # validates types, count, site, rate and probability
        if not self.host:
            raise ValueError("host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos}")
        if self.max_messages_per_device is not None and self.max_messages_per_device < 1:
            raise ValueError(
                f"max_messages_per_device must be >= 1, got {self.max_messages_per_device}"
            )
        if self.max_concurrent_connects < 1:
            raise ValueError("max_concurrent_connects must be >= 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")

    def fleet_spec(self) -> FleetSpec:
        return FleetSpec(
            types=self.types,
            count_per_type=self.count_per_type,
            site=self.site,
            rate_hz=self.rate_hz,
            seed=self.seed,
            anomaly_probability=self.anomaly_probability,
        )

    @property
    def mqtt_url(self) -> str:
        """The broker as a URL with the password masked, for logs and start-up banners."""
        auth = ""
        if self.username is not None:
            auth = self.username + (":****" if self.password is not None else "") + "@"
        scheme = "mqtt" if self.tls_context is None else "mqtts"
        return f"{scheme}://{auth}{self.host}:{self.port}"

    def describe(self) -> dict[str, object]:
        """Effective settings, secrets masked."""
        return {
            "mqtt_url": self.mqtt_url,
            "site": self.site,
            "types": ",".join(self.types) or "none",
            "count_per_type": self.count_per_type,
            "devices": len(self.types) * self.count_per_type,
            "rate_hz": self.rate_hz,
            "seed": self.seed,
            "anomaly_probability": self.anomaly_probability,
            "qos": self.qos,
            "max_messages_per_device": self.max_messages_per_device,
        }


@dataclass
class SimulatorStats:
    """Live counters; the runner updates them in place so a caller can print progress."""

    published: int = 0  # telemetry messages handed to the MQTT client
    acked: int = 0  # telemetry PUBACKs (with QoS 0: messages written to the socket)
    anomalies: int = 0
    connected: int = 0  # devices with an established connection now
    devices: int = 0
    dropped: int = 0  # readings not published: link down or client queue full
    connects: int = 0  # successful connections, including reconnects
    connect_failures: int = 0  # connection attempts that failed (broker down, refused)
    connection_losses: int = 0  # established connections lost without a clean disconnect


@dataclass(slots=True)
class _Device:
    """Runner-side state of one device: its model, its connection and its schedule."""

    index: int
    sim: SimulatedDevice
    telemetry_topic: str
    status_topic: str
    link: MqttLink | None = None
    failures: int = 0
    retry: asyncio.TimerHandle | None = None
    enrolled: bool = False
    finished: bool = False
    status_mids: dict[int, asyncio.Future[None] | None] = field(default_factory=dict)


def _status_payload(state: str, ts: int | None) -> bytes:
    body: dict[str, object] = {"state": state}
    if ts is not None:
        body["ts"] = ts
    return json.dumps(body, separators=(",", ":")).encode()


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        logger.info("fd_limit_raised", extra={"soft": target, "needed": needed})
    if target < needed:
        logger.warning("fd_limit_low", extra={"soft": target, "needed": needed, "hard": hard})


class SimulatorRunner:
    """Runs a fleet until `stop` is set or every device reached `max_messages_per_device`.

    Devices are reachable through `devices` (by id) so that tests and demos can inject faults.
    """

    def __init__(self, config: SimulatorConfig, stats: SimulatorStats | None = None) -> None:
        self.config = config
        self.stats = stats if stats is not None else SimulatorStats()
        sims = build_fleet(config.fleet_spec(), on_anomaly=self._on_anomaly)
        self._devices = [
            _Device(
                i,
                sim,
                telemetry_topic(config.site, sim.device_id),
                status_topic(config.site, sim.device_id),
            )
            for i, sim in enumerate(sims)
        ]
        self.devices: dict[str, SimulatedDevice] = {d.sim.device_id: d.sim for d in self._devices}
        self._by_id = {d.sim.device_id: d for d in self._devices}
        self.stats.devices = len(self._devices)
        self._period_ms = 1000.0 / config.rate_hz
        self._jitter = random.Random(config.seed)
        self._schedule: list[tuple[float, int]] = []
        self._connect_queue: asyncio.Queue[_Device] = asyncio.Queue()
        self._stopping = False
        self._unfinished = len(self._devices)
        self._all_finished = asyncio.Event()
        self._draining = False
        self._drained = asyncio.Event()
        self._clock_origin_ms = 0.0
        self._clock_origin_mono = 0.0

    def now_ms(self) -> int:
        """Simulated time: wall clock at start, then advanced by the monotonic clock."""
        return int(self._now_ms_float())

    def _now_ms_float(self) -> float:
        return self._clock_origin_ms + (time.monotonic() - self._clock_origin_mono) * 1000.0

    def is_connected(self, device_id: str) -> bool:
        link = self._by_id[device_id].link
        return link is not None and link.connected

    async def run(self, stop: asyncio.Event) -> SimulatorStats:
        loop = asyncio.get_running_loop()
        config = self.config
        self._clock_origin_ms = time.time() * 1000.0
        self._clock_origin_mono = time.monotonic()
        if not self._devices:
            logger.info("simulators_idle", extra={"reason": "no devices"})
            await stop.wait()
            return self.stats
        _raise_fd_limit(len(self._devices) + 256)
        logger.info(
            "simulators_start",
            extra={
                "devices": len(self._devices),
                "site": config.site,
                "types": ",".join(config.types),
                "rate_hz": config.rate_hz,
                "broker": config.mqtt_url,
            },
        )
        workers = min(config.max_concurrent_connects, len(self._devices))
        executor = ThreadPoolExecutor(max_workers=min(workers, 8), thread_name_prefix="sim-conn")
        connectors: list[asyncio.Task[None]] = []
        loops: list[asyncio.Task[None]] = []
        try:
            for i, device in enumerate(self._devices, start=1):
                device.link = self._make_link(device, loop, executor)
                self._connect_queue.put_nowait(device)
                if i % _MAX_BATCH == 0:
                    await asyncio.sleep(0)  # thousands of clients: let the host loop breathe
            connectors = [asyncio.create_task(self._connect_worker()) for _ in range(workers)]
            loops = [
                asyncio.create_task(self._publish_loop()),
                asyncio.create_task(self._keepalive_loop()),
            ]
            stop_wait = asyncio.create_task(stop.wait())
            done_wait = asyncio.create_task(self._all_finished.wait())
            try:
                await asyncio.wait({stop_wait, done_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_wait.cancel()
                done_wait.cancel()
            if self._all_finished.is_set():
                await self._wait_for_acks(timeout_s=10.0)
        finally:
            await self._shutdown(connectors, loops)
            executor.shutdown(wait=False)
        logger.info(
            "simulators_stop",
            extra={
                "published": self.stats.published,
                "acked": self.stats.acked,
                "dropped": self.stats.dropped,
                "anomalies": self.stats.anomalies,
            },
        )
        return self.stats

    # connections

    def _make_link(
        self, device: _Device, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor
    ) -> MqttLink:
        config = self.config
        settings = LinkSettings(
            host=config.host,
            port=config.port,
            client_id=f"sim-{config.site}-{device.sim.device_id}",
            username=config.username,
            password=config.password,
            keepalive_s=config.keepalive_s,
            connect_timeout_s=config.connect_timeout_s,
            tls_context=config.tls_context,
        )
        return MqttLink(
            settings,
            loop=loop,
            executor=executor,
            will=Will(device.status_topic, _status_payload("offline", None), qos=1, retain=True),
            on_connected=lambda: self._on_connected(device),
            on_lost=lambda: self._on_lost(device),
            on_acked=lambda mid: self._on_acked(device, mid),
        )

    async def _connect_worker(self) -> None:
        while not self._stopping:
            await self._connect(await self._connect_queue.get())

    async def _connect(self, device: _Device) -> None:
        link = device.link
        assert link is not None
        if link.connected or link.connecting:
            return
        now = self.now_ms()
        if device.sim.is_offline(now) and device.sim.offline_until_ms is not None:
            self._schedule_connect(device, (device.sim.offline_until_ms - now) / 1000.0)
            return
        try:
            await link.connect()
        except LinkConnectError as exc:
            device.failures += 1
            self.stats.connect_failures += 1
            delay = min(
                self.config.reconnect_max_s,
                self.config.reconnect_min_s * 2 ** min(device.failures - 1, 16),
            ) * self._jitter.uniform(0.5, 1.0)
            # Every device of a fleet fails at once when the broker is down: one warning each,
            # then the retries only at debug level.
            logger.log(
                logging.WARNING if device.failures == 1 else logging.DEBUG,
                "connect_failed",
                extra={
                    "device": device.sim.device_id,
                    "attempt": device.failures,
                    "retry_in_s": round(delay, 1),
                    "error": str(exc),
                },
            )
            self._schedule_connect(device, delay)

    def _schedule_connect(self, device: _Device, delay_s: float) -> None:
        if self._stopping or device.retry is not None:
            return

        def enqueue() -> None:
            device.retry = None
            if not self._stopping:
                self._connect_queue.put_nowait(device)

        device.retry = asyncio.get_running_loop().call_later(max(0.0, delay_s), enqueue)

    def _on_connected(self, device: _Device) -> None:
        link = device.link
        assert link is not None
        now = self.now_ms()
        device.failures = 0
        self.stats.connected += 1
        self.stats.connects += 1
        logger.debug("connected", extra={"device": device.sim.device_id})
        if self.stats.connected == len(self._devices):
            logger.info("all_connected", extra={"devices": len(self._devices)})
        mid = link.publish(device.status_topic, _status_payload("online", now), 1, retain=True)
        if mid is not None:
            device.status_mids[mid] = None
        if device.sim.is_offline(now):  # a dropout began while the connection was being made
            link.drop()
            return
        if not device.enrolled:
            device.enrolled = True
            self._enroll(device, now)

    def _on_lost(self, device: _Device) -> None:
        self.stats.connected -= 1
        self.stats.connection_losses += 1
        # status_mids stay: paho resends unacknowledged QoS 1 messages after reconnecting.
        now = self.now_ms()
        until = device.sim.offline_until_ms
        if until is not None and now < until:
            logger.info(
                "dropout_disconnected",
                extra={"device": device.sim.device_id, "offline_for_s": (until - now) / 1000.0},
            )
            self._schedule_connect(device, (until - now) / 1000.0)
        else:
            delay = self.config.reconnect_min_s * self._jitter.uniform(0.5, 1.0)
            logger.warning(
                "connection_lost",
                extra={"device": device.sim.device_id, "retry_in_s": round(delay, 1)},
            )
            self._schedule_connect(device, delay)

    def _on_acked(self, device: _Device, mid: int) -> None:
        if mid in device.status_mids:
            waiter = device.status_mids.pop(mid)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            self.stats.acked += 1
            if self._draining and self.stats.acked >= self.stats.published:
                self._drained.set()

    def _on_anomaly(self, record: AnomalyRecord) -> None:
        self.stats.anomalies += 1
        fields: dict[str, object] = {
            "device": record.device_id,
            "kind": str(record.kind),
            "metric": record.metric or "-",
            "start_ts": record.start_ts,
        }
        if record.offline_until_ts is not None:
            fields["offline_until_ts"] = record.offline_until_ts
        else:
            fields["samples"] = record.samples
        logger.info("anomaly", extra=fields)
        if record.kind == AnomalyKind.DROPOUT:
            device = self._by_id.get(record.device_id)
            if device is not None and device.link is not None:
                device.link.drop()  # no DISCONNECT: the broker publishes the last will

    # publishing

    def _enroll(self, device: _Device, now_ms: int) -> None:
        """Start the device's schedule at its next phase slot, so phases stay evenly spread."""
        period = self._period_ms
        base = self._clock_origin_ms + period * device.index / len(self._devices)
        slots = max(0, math.ceil((now_ms - base) / period))
        heapq.heappush(self._schedule, (base + slots * period, device.index))

    async def _publish_loop(self) -> None:
        schedule = self._schedule
        period = self._period_ms
        while True:
            now = self._now_ms_float()
            handled = 0
            while schedule and schedule[0][0] <= now and handled < _MAX_BATCH:
                due, index = heapq.heappop(schedule)
                device = self._devices[index]
                self._publish_reading(device, int(due))
                handled += 1
                if device.finished:
                    continue
                nxt = due + period
                if now - nxt > max(period, _MAX_CATCH_UP_MS):
                    # Far behind (overloaded host, suspended process): skip the missed samples
                    # instead of bursting them all out; shorter hiccups are caught up.
                    nxt = due + math.ceil((now - due) / period) * period
                heapq.heappush(schedule, (nxt, index))
            if handled >= _MAX_BATCH:
                await asyncio.sleep(0)
                continue
            delay_s = (schedule[0][0] - now) / 1000.0 if schedule else 0.05
            await asyncio.sleep(min(max(delay_s, 0.001), 0.05))

    def _publish_reading(self, device: _Device, ts: int) -> None:
        payload = device.sim.next_payload(ts)
        if payload is None:
            return  # dropout: the device is silent
        limit = self.config.max_messages_per_device
        if limit is not None and device.sim.seq >= limit:
            device.finished = True
            self._unfinished -= 1
            if self._unfinished == 0:
                self._all_finished.set()
        link = device.link
        mid = None
        if link is not None and link.connected:
            body = json.dumps(payload, separators=(",", ":")).encode()
            mid = link.publish(device.telemetry_topic, body, self.config.qos)
        if mid is None:
            self.stats.dropped += 1
        else:
            self.stats.published += 1

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(_KEEPALIVE_INTERVAL_S)
            for i, device in enumerate(self._devices):
                if device.link is not None:
                    device.link.misc()
                if i % _MAX_BATCH == _MAX_BATCH - 1:
                    await asyncio.sleep(0)

    # shutdown

    async def _wait_for_acks(self, timeout_s: float) -> None:
        self._draining = True
        if self.stats.acked < self.stats.published:
            await _wait_quietly(self._drained.wait(), timeout_s)

    async def _shutdown(
        self, connectors: list[asyncio.Task[None]], loops: list[asyncio.Task[None]]
    ) -> None:
        self._stopping = True
        for device in self._devices:
            if device.retry is not None:
                device.retry.cancel()
                device.retry = None
        # A cancelled connect still waits for its TCP connect (bounded by connect_timeout_s) and
        # then closes that socket, so no connection opens after the others were closed.
        for task in (*connectors, *loops):
            task.cancel()
        await asyncio.gather(*connectors, *loops, return_exceptions=True)
        await asyncio.gather(*(self._close_device(d) for d in self._devices))

    async def _close_device(self, device: _Device) -> None:
        """Retained `offline` status, wait for its PUBACK, then a clean DISCONNECT."""
        link = device.link
        if link is None or not link.connected:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        payload = _status_payload("offline", self.now_ms())
        mid = link.publish(device.status_topic, payload, 1, retain=True)
        if mid is not None:
            device.status_mids[mid] = waiter
            await _wait_quietly(waiter, 5.0)
        if link.connected:  # else it was lost meanwhile and already counted
            self.stats.connected -= 1
            await link.close()


async def _wait_quietly(waiter: Awaitable[object], timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await waiter
    except TimeoutError:
        pass


async def run_simulators(
    config: SimulatorConfig, stop: asyncio.Event, stats: SimulatorStats | None = None
) -> SimulatorStats:
    """Run the fleet until `stop` is set (or every device hit `max_messages_per_device`), then
    publish retained `offline` statuses, disconnect cleanly and return the final counters."""
    return await SimulatorRunner(config, stats).run(stop)
