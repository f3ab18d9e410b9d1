"""OPC UA client connector (asyncua): one subscription per connector, a monitored item per
configured node (sampling interval, deadband), source timestamps kept; reconnect with backoff
and subscribe again. A node that cannot be monitored is counted and logged, the others run.
After each connect, the units and ranges the server defines (EngineeringUnits, EURange) for
values the configuration gives none are reported as the device's metadata."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from edge_gateway.connectors.config import (
    OpcUaConnector,
    OpcUaDevice,
    OpcUaNode,
    resolve_secret,
)
from edge_gateway.connectors.health import ConnectorHealth
from edge_gateway.connectors.metadata import discovered_fields
from edge_gateway.connectors.opcua_values import Batch, NodeTarget, reading_value, timestamp_ms
from edge_gateway.connectors.sink import ReadingSink
from iot_common.backoff import Backoff

log = logging.getLogger("edge.connectors.opcua")
_DEADBAND_TYPES = {"absolute": 1, "percent": 2}  # OPC UA Part 4, 7.22.2 DeadbandType
_CONNECTION_ERRORS = (OSError, TimeoutError, ConnectionError, ua.UaError, asyncio.CancelledError)


class _Handler:
    """asyncua calls `datachange_notification` once per item of a notification, synchronously
    (this handler is not a coroutine); the batch is flushed right after, as one set of readings."""

    def __init__(self, connector: OpcUaClientConnector) -> None:
        self._connector = connector
        self._batch: Batch | None = None

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        item = data.monitored_item
        target = self._connector.targets.get(item.ClientHandle)
        if target is None:
            return
        if self._batch is None:
            self._batch = Batch()
            asyncio.get_running_loop().call_soon(self._flush)
        self._connector.add_value(self._batch, target, item.Value)

    def status_change_notification(self, status: Any) -> None:
        self._connector.lost(f"subscription status {status.Status}")

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            self._connector.emit(batch)


class OpcUaClientConnector:
    def __init__(self, config: OpcUaConnector, sink: ReadingSink) -> None:
        self.config = config
        self.health = ConnectorHealth(config.name, "opcua", config.endpoint)
        self.targets: dict[int, NodeTarget] = {}  # client handle -> target
        self._sink = sink
        self._lost = asyncio.Event()
        self._next_handle = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(
            initial_s=min(0.5, self.config.reconnect_max_s), max_s=self.config.reconnect_max_s
        )
        while not stop.is_set():
            try:
                if await self._session(stop):
                    backoff.reset()
            except Exception as exc:  # a bug in one connector never stops the gateway
                self.health.connected = False
                self.health.count("unexpected", f"{type(exc).__name__}: {exc}")
                log.exception("connector_unexpected_error", extra=self._extra())
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())

    def _extra(self) -> dict[str, str]:
        return {"connector": self.config.name, "endpoint": self.config.endpoint}

    async def _session(self, stop: asyncio.Event) -> bool:
        """Connect, subscribe, watch the connection; True if it was connected at all."""
        client = Client(self.config.endpoint, timeout=self.config.timeout_s)
        self._lost.clear()
        try:
            await self._configure(client)
            await client.connect()
        except _CONNECTION_ERRORS as exc:
            self.health.count("connect_failed", _describe(exc))
            log.warning("opcua_connect_failed", extra={**self._extra(), "error": _describe(exc)})
            return False
        try:
            self.health.connected = True
            log.info("opcua_connected", extra=self._extra())
            handler = _Handler(self)
            subscription = await client.create_subscription(
                self.config.publishing_interval_ms, handler
            )
            self.targets.clear()
            monitored = [
                (device, await self._monitor(client, subscription, device))
                for device in self.config.devices
            ]
            for device, nodes in monitored:
                await self._report_discovered(device, nodes)
            await self._watch(client, stop)
        except _CONNECTION_ERRORS as exc:
            if isinstance(exc, asyncio.CancelledError) and stop.is_set():
                raise
            self.lost(_describe(exc))
        finally:
            self.health.connected = False
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await asyncio.wait_for(client.disconnect(), self.config.timeout_s)
        return True

    async def _configure(self, client: Client) -> None:
        security, auth = self.config.security, self.config.auth
        if security.policy == "Basic256Sha256":
            assert security.certificate is not None
            assert security.private_key is not None
            mode = getattr(ua.MessageSecurityMode, security.mode)
            server_cert = str(security.server_certificate) if security.server_certificate else None
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                str(security.certificate),
                str(security.private_key),
                server_certificate=server_cert,
                mode=mode,
            )
        if auth.kind == "username":
            assert auth.username is not None
            assert auth.password is not None
            client.set_user(auth.username)
            client.set_password(resolve_secret(auth.password, "auth.password").get_secret_value())
        elif auth.kind == "certificate":
            assert auth.certificate is not None
            assert auth.private_key is not None
            await client.load_client_certificate(str(auth.certificate))
            await client.load_private_key(Path(auth.private_key))

    async def _watch(self, client: Client, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            await client.check_connection()

    def lost(self, error: str) -> None:
        if self._lost.is_set():
            return
        self._lost.set()
        self.health.count("connection_lost", error)
        log.warning("opcua_connection_lost", extra={**self._extra(), "error": error})

    async def _monitor(
        self, client: Client, subscription: Any, device: OpcUaDevice
    ) -> list[tuple[OpcUaNode, Node]]:
        """Monitored items for the device's nodes; the nodes that resolved."""
        requests, targets, resolved = [], [], []
        for spec in device.nodes:
            node = await self._resolve(client, device, spec)
            if node is None:
                continue
            resolved.append((spec, node))
            self._next_handle += 1
            requests.append(_request(node, spec, self._next_handle))
            targets.append(NodeTarget(device.device_id, device.type, spec.metric))
        if not requests:
            return resolved
        for request, target in zip(requests, targets, strict=True):
            self.targets[request.RequestedParameters.ClientHandle] = target
        results = await subscription.create_monitored_items(requests)
        for request, target, result in zip(requests, targets, results, strict=True):
            if isinstance(result, ua.StatusCode):
                del self.targets[request.RequestedParameters.ClientHandle]
                self._bad_node(device, target.metric, result.name)
        return resolved

    async def _report_discovered(
        self, device: OpcUaDevice, nodes: list[tuple[OpcUaNode, Node]]
    ) -> None:
        """The server's EngineeringUnits and EURange of the values whose unit or engineering
        range the file leaves unset, reported with the file's metadata (which wins) when the
        server defines any. Two reads per such node, once per connect."""
        found: dict[str, dict[str, object]] = {}
        for spec, node in nodes:
            unit = None if spec.unit is not None else await _property(node, "EngineeringUnits")
            span = None if spec.engineering is not None else await _property(node, "EURange")
            text = getattr(getattr(unit, "DisplayName", None), "Text", None)
            fields = discovered_fields(
                text if isinstance(text, str) else None,
                _number(getattr(span, "Low", None)),
                _number(getattr(span, "High", None)),
            )
            if fields:
                found[spec.metric] = fields
        if found:
            self._sink.report_metadata(self.health, device, "opcua", found)
            log.info(
                "opcua_metadata_discovered",
                extra={**self._extra(), "device": device.device_id, "metrics": len(found)},
            )

    async def _resolve(self, client: Client, device: OpcUaDevice, spec: OpcUaNode) -> Node | None:
        try:
            if spec.node_id is not None:
                return client.get_node(spec.node_id)
            assert spec.browse_path is not None
            return await client.nodes.objects.get_child(spec.browse_path.split("/"))
        except (ua.UaStatusCodeError, ValueError) as exc:
            self._bad_node(device, spec.metric, _describe(exc))
            return None

    def _bad_node(self, device: OpcUaDevice, metric: str, error: str) -> None:
        self.health.count("bad_node", f"{device.device_id}.{metric}: {error}")
        log.warning(
            "opcua_node_unavailable",
            extra={**self._extra(), "device": device.device_id, "metric": metric, "error": error},
        )

    def add_value(self, batch: Batch, target: NodeTarget, data_value: Any) -> None:
        status = data_value.StatusCode_
        if status is not None and not status.is_good():
            self.health.count("bad_status", f"{target.device_id}.{target.metric}: {status.name}")
            return
        value = reading_value(data_value.Value.Value if data_value.Value else None)
        if value is None:
            self.health.count("bad_value", f"{target.device_id}.{target.metric}: not a number")
            return
        now = time.time_ns() // 1_000_000
        ts = timestamp_ms(data_value.SourceTimestamp, data_value.ServerTimestamp, now)
        batch.add(target, ts, value)

    def emit(self, batch: Batch) -> None:
        for (device_id, ts), values in batch.readings.items():
            self._sink.emit(self.health, device_id, batch.types[device_id], values, ts)


def _request(node: Node, spec: OpcUaNode, handle: int) -> ua.MonitoredItemCreateRequest:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = spec.sampling_interval_ms
    params.QueueSize = 1
    params.DiscardOldest = True
    if spec.deadband is not None:
        params.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=_DEADBAND_TYPES[spec.deadband.type],
            DeadbandValue=spec.deadband.value,
        )
    request = ua.MonitoredItemCreateRequest()
    read = ua.ReadValueId()
    read.NodeId = node.nodeid
    read.AttributeId = ua.AttributeIds.Value
    request.ItemToMonitor = read
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request


async def _property(node: Node, name: str) -> Any:
    """A standard property's value (namespace 0), or None if the node has none."""
    try:
        return await (await node.get_child(f"0:{name}")).read_value()
    except ua.UaStatusCodeError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
