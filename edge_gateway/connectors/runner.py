"""The configured connectors as gateway tasks: one task per connector, all feeding one intake of
their own (edge_gateway/intake.py), so their readings take the MQTT messages' path."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from edge_gateway.connectors.config import ConnectorsFile, ModbusConnector
from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.sink import ReadingSink
from edge_gateway.intake import Intake, IntakeTarget

log = logging.getLogger("edge.connectors")

Spawn = Callable[[str, Coroutine[Any, Any, None]], None]
Join = Callable[[str, float], Awaitable[None]]


class _Runnable(Protocol):
    health: ConnectorHealth

    async def run(self, stop: asyncio.Event) -> None: ...


def task_name(connector: str) -> str:
    return f"connector:{connector}"


class ConnectorSet:
    def __init__(self, config: ConnectorsFile, site: str, gateway_id: str) -> None:
        self._config = config
        self._site = site
        self._gateway_id = gateway_id
        self._stop = asyncio.Event()
        self._intake: Intake | None = None
        self._running: list[_Runnable] = []

    def __bool__(self) -> bool:
        return bool(self._config.connectors)

    def start(self, target: IntakeTarget, spawn: Spawn) -> None:
        # Imported here: the pymodbus and asyncua imports cost only gateways that use them.
        from edge_gateway.connectors.modbus import ModbusPoller
        from edge_gateway.connectors.opcua import OpcUaClientConnector

        # The connectors log each event once, structured; the libraries' own lines would repeat
        # them (pymodbus warns on every failed connect, asyncua logs each attempt at INFO).
        logging.getLogger("pymodbus").setLevel(logging.ERROR)
        logging.getLogger("asyncua").setLevel(logging.WARNING)
        # Nothing to acknowledge: the buffer commit is the durability point.
        self._intake = target.intake(lambda _tokens: None)
        self._intake.start()
        sink = ReadingSink(
            self._intake,
            self._site,
            gateway_id=self._gateway_id,
            kafka_topics=target.router.topics,
        )
        for config in self._config.connectors:
            runnable: _Runnable = (
                ModbusPoller(config, sink)
                if isinstance(config, ModbusConnector)
                else OpcUaClientConnector(config, sink)
            )
            self._running.append(runnable)
            # Once per start, ahead of the device's first readings: the hub keeps the newest.
            for device in config.devices:
                sink.report_metadata(runnable.health, device, config.kind)
            spawn(task_name(config.name), runnable.run(self._stop))
            log.info(
                "connector_started",
                extra={"connector": config.name, "kind": config.kind, "endpoint": config.endpoint},
            )

    async def stop(self, join: Join) -> None:
        """Stop polling and subscriptions, then commit what they produced."""
        self._stop.set()
        for config in self._config.connectors:
            await join(task_name(config.name), 10)
        if self._intake is not None:
            await asyncio.to_thread(self._intake.stop)

    def snapshots(self, now_s: float | None = None) -> tuple[dict[str, Any], ...]:
        now = time.monotonic() if now_s is None else now_s
        return tuple(r.health.snapshot(now) for r in self._running)
