"""Modbus TCP poller (pymodbus): each device's registers read in contiguous blocks every poll
interval, one reading per device per poll; reconnect with backoff. Decoding is modbus_codec."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from edge_gateway.connectors.config import ModbusConnector, ModbusDevice
from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.modbus_codec import ReadBlock, block_values, plan_reads
from edge_gateway.connectors.sink import ReadingSink
from iot_common.backoff import Backoff

log = logging.getLogger("edge.connectors.modbus")


class _Lost(Exception):
    """The connection is gone: reconnect."""


class ModbusPoller:
    def __init__(self, config: ModbusConnector, sink: ReadingSink) -> None:
        self.config = config
        self.health = ConnectorHealth(config.name, "modbus", config.endpoint)
        self._sink = sink
        self._plans = {d.device_id: plan_reads(d.registers, config.max_gap) for d in config.devices}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(
            initial_s=min(0.5, self.config.reconnect_max_s), max_s=self.config.reconnect_max_s
        )
        while not stop.is_set():
            host, port = self.config.host_port
            # pymodbus's own reconnect is off: this loop owns backoff and counting.
            client = AsyncModbusTcpClient(
                host, port=port, timeout=self.config.timeout_s, retries=0, reconnect_delay=0
            )
            try:
                if await client.connect():
                    backoff.reset()
                    self._set_connected(True)
                    await self._poll_devices(client, stop)
                else:
                    self.health.count("connect_failed", f"cannot connect to {host}:{port}")
                    log.warning("modbus_connect_failed", extra=self._extra())
            except _Lost as exc:
                self.health.count("connection_lost", str(exc))
                log.warning("modbus_connection_lost", extra={**self._extra(), "error": str(exc)})
            except Exception as exc:  # a bug in one connector never stops the gateway
                self.health.count("unexpected", f"{type(exc).__name__}: {exc}")
                log.exception("connector_unexpected_error", extra=self._extra())
            finally:
                self._set_connected(False)
                client.close()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())

    def _set_connected(self, connected: bool) -> None:
        if connected != self.health.connected:
            self.health.connected = connected
            if connected:
                log.info("modbus_connected", extra=self._extra())

    def _extra(self) -> dict[str, str]:
        return {"connector": self.config.name, "endpoint": self.config.endpoint}

    async def _poll_devices(self, client: AsyncModbusTcpClient, stop: asyncio.Event) -> None:
        """Each device on its own interval, in one task so requests never interleave."""
        due = {d.device_id: 0.0 for d in self.config.devices}
        while not stop.is_set():
            now = time.monotonic()
            for device in self.config.devices:
                if due[device.device_id] <= now:
                    due[device.device_id] = now + device.poll_interval_s
                    await self._poll(client, device)
            wait = max(0.0, min(due.values()) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _poll(self, client: AsyncModbusTcpClient, device: ModbusDevice) -> None:
        ts_ms = time.time_ns() // 1_000_000
        values: dict[str, float | bool] = {}
        for block in self._plans[device.device_id]:
            data = await self._read(client, device, block)
            if data is None:
                continue
            decoded, skipped = block_values(block, data)
            values.update(decoded)
            for metric in skipped:
                self.health.count("not_finite", f"{device.device_id}.{metric} is NaN or infinite")
                log.warning(
                    "modbus_value_skipped",
                    extra={
                        **self._extra(),
                        "device": device.device_id,
                        "metric": metric,
                        "reason": "not_finite",
                    },
                )
        self._sink.emit(self.health, device.device_id, device.type, values, ts_ms)

    async def _read(
        self, client: AsyncModbusTcpClient, device: ModbusDevice, block: ReadBlock
    ) -> Sequence[int] | Sequence[bool] | None:
        """One block's registers or bits; None (counted) on a timeout or exception response."""
        read = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete_input": client.read_discrete_inputs,
        }[block.table]
        where = f"{device.device_id} {block.table} {block.address}+{block.count}"
        try:
            response = await read(block.address, count=block.count, device_id=device.unit_id)
        except ModbusIOException as exc:
            self.health.count("timeout", f"{where}: {exc}")
            log.warning("modbus_timeout", extra={**self._extra(), "block": where})
            if not client.connected:
                raise _Lost(str(exc)) from None
            return None
        except ConnectionException as exc:
            raise _Lost(str(exc)) from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            self.health.count("modbus_exception", f"{where}: exception code {code}")
            log.warning(
                "modbus_exception_response",
                extra={**self._extra(), "block": where, "exception_code": code},
            )
            return None
        if block.table in ("coil", "discrete_input"):
            return list(response.bits[: block.count])
        return list(response.registers)
