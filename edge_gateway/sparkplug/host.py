"""The Sparkplug B 3.0 host application's state machine, sans I/O: MQTT messages in (topic,
payload, clock), outputs back (readings, device statuses, refusals to dead-letter, commands to
publish, notices to log). One instance belongs to one thread (the intake's writer).

Rules (Sparkplug 3.0 chapters 5 and 6), per edge node:
* NBIRTH: the node is online; its metrics' names, aliases and datatypes are recorded (its devices'
  births are forgotten: a new NBIRTH comes before new DBIRTHs); `seq` restarts.
* NDATA/DBIRTH/DDATA/DDEATH carry the node's `seq` 0..255 (wrapping). One ahead of the expected
  is held until the missing ones arrive; if they have not after `reorder_timeout_ms`, the held
  messages are applied in seq order and a rebirth is requested (NCMD `Node Control/Rebirth`).
  One behind (a late straggler) is applied and counted.
* NDEATH counts only with the `bdSeq` of the node's current NBIRTH (an old session's will, sent
  after the node reconnected, is ignored and counted); it takes the node and its devices offline.
* DATA for a node or device with no birth, or an alias no birth defined: counted, the rest of the
  message kept, and a rebirth requested (at most once per `reorder_timeout_ms` and node).
* NBIRTH/DBIRTH also give the device's metadata (`Metadata`, edge_gateway.sparkplug.metadata):
  each metric's original name, unit, engineering range and description; a rebirth gives it again.
  A metric with unusable properties is counted and left out of it, never out of the readings.
* Live values only: `is_historical` metrics (store-and-forward backfill) and `is_transient` ones
  are counted and left out; strings, datasets, templates and other non-numeric types too.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, Literal

from google.protobuf.message import DecodeError as ProtobufDecodeError

from edge_gateway.sparkplug import names, topic
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.metadata import birth_metadata, unit_of
from edge_gateway.sparkplug.values import Skip, reading_value, type_name
from protocol.models import MAX_METRICS, MAX_PAYLOAD_BYTES
from protocol.topics import IDENTIFIER_PATTERN, is_identifier

REBIRTH_METRIC: Final = "Node Control/Rebirth"
BDSEQ_METRIC: Final = "bdSeq"
_CONTROL_PREFIXES: Final = ("Node Control/", "Device Control/")
_HELD_MAX: Final = 64  # a node this far ahead is not coming back in order
_NOTICE_KEYS_MAX: Final = 10_000

Reason = str


@dataclass(frozen=True, slots=True)
class Reading:
    site: str
    device_id: str
    ts: int
    metrics: dict[str, float | bool]

    def payload(self) -> bytes:
        """Our device payload (plant/{site}/{device_id}/telemetry), validated by the router."""
        return json.dumps({"ts": self.ts, "metrics": self.metrics}).encode()


@dataclass(frozen=True, slots=True)
class Status:
    site: str
    device_id: str
    state: Literal["online", "offline"]
    ts: int

    def payload(self) -> bytes:
        return json.dumps({"state": self.state, "ts": self.ts}).encode()


@dataclass(frozen=True, slots=True)
class Metadata:
    """What a birth says of a device's metrics, for `iot.device-metadata`: normalised name ->
    MetricMetadata fields (source_name, unit, engineering, description)."""

    site: str
    device_id: str
    ts: int
    metrics: dict[str, dict[str, object]]


@dataclass(frozen=True, slots=True)
class Refused:
    """The whole message is refused: dead-letter its raw payload with this reason."""

    reason: str
    detail: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class Command:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth one log line (the first time per node/device, metric and reason)."""

    event: str
    reason: str
    device_id: str
    detail: str


Output = Reading | Status | Metadata | Refused | Command | Notice


@dataclass(frozen=True, slots=True)
class MetricInfo:
    original: str
    normalised: str
    alias: int | None
    datatype: str
    unit: str | None


@dataclass(slots=True)
class _Birth:
    by_name: dict[str, MetricInfo]
    by_alias: dict[int, MetricInfo]
    datatypes: dict[str, int]  # original name -> datatype code


@dataclass(slots=True)
class _Held:
    where: topic.SparkplugTopic
    payload: pb.Payload
    received_ms: int


@dataclass(slots=True)
class _Node:
    group_id: str
    edge_node_id: str
    bd_seq: int | None = None
    birth: _Birth | None = None
    devices: dict[str, _Birth] = field(default_factory=dict)
    expected_seq: int | None = None
    held: dict[int, _Held] = field(default_factory=dict)
    held_since_ms: int | None = None
    last_rebirth_ms: int | None = None


def state_payload(online: bool, ts: int) -> bytes:
    """Sparkplug 3.0 host STATE payload (retained on spBv1.0/STATE/{host_id})."""
    return json.dumps({"online": online, "timestamp": ts}, separators=(",", ":")).encode()


def rebirth_command(group_id: str, edge_node_id: str, ts: int) -> Command:
    payload = pb.Payload(timestamp=ts)
    payload.metrics.add(name=REBIRTH_METRIC, datatype=pb.Boolean, boolean_value=True, timestamp=ts)
    return Command(topic.ncmd_topic(group_id, edge_node_id), payload.SerializeToString())


def _is_control(name: str) -> bool:
    return name == BDSEQ_METRIC or name.startswith(_CONTROL_PREFIXES)


class SparkplugHost:
    def __init__(self, *, reorder_timeout_ms: int = 2000) -> None:
        self.reorder_timeout_ms = reorder_timeout_ms
        self._nodes: dict[tuple[str, str], _Node] = {}
        self.counts: Counter[Reason] = Counter()  # skipped/refused/anomalies, by reason
        self.rebirths_requested_total = 0
        self._noticed: set[tuple[str, str, str]] = set()

    # -- inputs ------------------------------------------------------------------------------

    def receive(self, mqtt_topic: str, payload: bytes, now_ms: int) -> list[Output]:
        out: list[Output] = []
        try:
            where = topic.parse(mqtt_topic)
        except topic.SparkplugTopicError as exc:
            return self._refuse(out, "sparkplug_bad_topic", str(exc), None)
        device_id = self._device_id(where)
        if not is_identifier(where.group_id) or not is_identifier(device_id):
            detail = (
                f"group {where.group_id!r} and device id {device_id!r} must match "
                f"{IDENTIFIER_PATTERN}"
            )
            return self._refuse(out, "sparkplug_bad_id", detail, None)
        if len(payload) > MAX_PAYLOAD_BYTES * 16:
            detail = f"{len(payload)} bytes, at most {MAX_PAYLOAD_BYTES * 16} allowed"
            return self._refuse(out, "payload_too_large", detail, device_id)
        try:
            message = pb.Payload.FromString(payload)
        except ProtobufDecodeError as exc:
            return self._refuse(out, "sparkplug_bad_payload", f"protobuf: {exc}", device_id)
        node = self._node(where)
        if where.message_type == "NBIRTH":
            self._nbirth(node, message, now_ms, out)
        elif where.message_type == "NDEATH":
            self._ndeath(node, message, now_ms, out)
        else:
            self._sequenced(node, where, message, now_ms, out)
        return out

    def tick(self, now_ms: int) -> list[Output]:
        """Held messages whose gap outlived the reorder timeout: applied, rebirth requested."""
        out: list[Output] = []
        for node in self._nodes.values():
            since = node.held_since_ms
            if since is not None and now_ms - since >= self.reorder_timeout_ms:
                self._give_up_gap(node, now_ms, out)
        return out

    # -- what the gateway reports ------------------------------------------------------------

    def device_metrics(self) -> dict[tuple[str, str], dict[str, MetricInfo]]:
        """(site, device_id) -> normalised name -> what the birth said (original name, alias,
        datatype, unit): the mapping the hub's device metadata can be filled from."""
        out: dict[tuple[str, str], dict[str, MetricInfo]] = {}
        for node in self._nodes.values():
            if node.birth is not None:
                key = (node.group_id, node.edge_node_id)
                out[key] = {i.normalised: i for i in node.birth.by_name.values()}
            for device, birth in node.devices.items():
                key = (node.group_id, f"{node.edge_node_id}.{device}")
                out[key] = {i.normalised: i for i in birth.by_name.values()}
        return out

    def online_nodes(self) -> int:
        return sum(1 for n in self._nodes.values() if n.birth is not None)

    # -- node lifecycle ----------------------------------------------------------------------

    def _nbirth(self, node: _Node, message: pb.Payload, now_ms: int, out: list[Output]) -> None:
        device_id = node.edge_node_id
        bd_seq = next((m for m in message.metrics if m.name == BDSEQ_METRIC), None)
        node.bd_seq = None if bd_seq is None else int(bd_seq.long_value or bd_seq.int_value)
        if bd_seq is None:
            self._count(out, "nbirth_without_bdseq", device_id, "NBIRTH", "no bdSeq metric")
        node.birth = self._birth(message)
        node.devices.clear()
        node.held.clear()
        node.held_since_ms = None
        node.expected_seq = (message.seq + 1) % 256 if message.HasField("seq") else None
        out.append(Status(node.group_id, device_id, "online", self._ts(message, now_ms)))
        self._metadata(node, device_id, node.birth, message, now_ms, out)
        self._readings(node, device_id, node.birth, message, now_ms, out)

    def _ndeath(self, node: _Node, message: pb.Payload, now_ms: int, out: list[Output]) -> None:
        metric = next((m for m in message.metrics if m.name == BDSEQ_METRIC), None)
        bd_seq = None if metric is None else int(metric.long_value or metric.int_value)
        if node.birth is None:
            self._count(out, "ndeath_unknown_node", node.edge_node_id, "NDEATH", "no birth seen")
            return
        if node.bd_seq is not None and bd_seq != node.bd_seq:
            detail = f"bdSeq {bd_seq} is not the current session's {node.bd_seq}"
            self._count(out, "ndeath_old_bdseq", node.edge_node_id, "NDEATH", detail)
            return
        ts = self._ts(message, now_ms)
        for device in node.devices:
            out.append(Status(node.group_id, f"{node.edge_node_id}.{device}", "offline", ts))
        out.append(Status(node.group_id, node.edge_node_id, "offline", ts))
        node.birth = None
        node.devices.clear()
        node.held.clear()
        node.held_since_ms = None
        node.expected_seq = None

    # -- seq ---------------------------------------------------------------------------------

    def _sequenced(
        self,
        node: _Node,
        where: topic.SparkplugTopic,
        message: pb.Payload,
        now_ms: int,
        out: list[Output],
    ) -> None:
        if node.birth is None:
            self._count(
                out, "before_birth", self._device_id(where), where.message_type, "no NBIRTH"
            )
            self._rebirth(node, now_ms, out)
            return
        if not message.HasField("seq") or node.expected_seq is None:
            self._count(out, "missing_seq", self._device_id(where), where.message_type, "")
            self._apply(node, where, message, now_ms, out)
            return
        seq = message.seq % 256
        ahead = (seq - node.expected_seq) % 256
        if ahead == 0:
            self._apply(node, where, message, now_ms, out)
            node.expected_seq = (seq + 1) % 256
            self._release_in_order(node, now_ms, out)
        elif ahead < 128:
            detail = f"seq {seq}, expected {node.expected_seq}"
            self._count(out, "seq_out_of_order", node.edge_node_id, where.message_type, detail)
            node.held[seq] = _Held(where, message, now_ms)
            if node.held_since_ms is None:
                node.held_since_ms = now_ms
            if len(node.held) >= _HELD_MAX:
                self._give_up_gap(node, now_ms, out)
        else:
            detail = f"seq {seq}, expected {node.expected_seq}"
            self._count(out, "seq_late", node.edge_node_id, where.message_type, detail)
            self._apply(node, where, message, now_ms, out)

    def _release_in_order(self, node: _Node, now_ms: int, out: list[Output]) -> None:
        while node.expected_seq is not None and node.expected_seq in node.held:
            held = node.held.pop(node.expected_seq)
            node.expected_seq = (node.expected_seq + 1) % 256
            self._apply(node, held.where, held.payload, now_ms, out)
            self.counts["seq_reordered"] += 1
        if not node.held:
            node.held_since_ms = None

    def _give_up_gap(self, node: _Node, now_ms: int, out: list[Output]) -> None:
        expected = node.expected_seq or 0
        order = sorted(node.held, key=lambda s: (s - expected) % 256)
        detail = f"seq {expected} never came; applied {len(order)} held messages"
        self._count(out, "seq_gap", node.edge_node_id, "seq", detail)
        for seq in order:
            held = node.held.pop(seq)
            self._apply(node, held.where, held.payload, now_ms, out)
        node.expected_seq = (order[-1] + 1) % 256 if order else node.expected_seq
        node.held_since_ms = None
        self._rebirth(node, now_ms, out, force=True)

    def _rebirth(self, node: _Node, now_ms: int, out: list[Output], *, force: bool = False) -> None:
        last = node.last_rebirth_ms
        if not force and last is not None and now_ms - last < self.reorder_timeout_ms:
            return
        node.last_rebirth_ms = now_ms
        self.rebirths_requested_total += 1
        out.append(rebirth_command(node.group_id, node.edge_node_id, now_ms))
        out.append(Notice("sparkplug_rebirth_requested", "rebirth", node.edge_node_id, ""))

    # -- devices and data --------------------------------------------------------------------

    def _apply(
        self,
        node: _Node,
        where: topic.SparkplugTopic,
        message: pb.Payload,
        now_ms: int,
        out: list[Output],
    ) -> None:
        assert node.birth is not None
        kind, device = where.message_type, where.device_id
        device_id = self._device_id(where)
        if kind == "NDATA":
            self._readings(node, device_id, node.birth, message, now_ms, out)
            return
        assert device is not None  # a device message type, by the topic parser
        if kind == "DBIRTH":
            birth = node.devices[device] = self._birth(message)
            out.append(Status(node.group_id, device_id, "online", self._ts(message, now_ms)))
            self._metadata(node, device_id, birth, message, now_ms, out)
            self._readings(node, device_id, birth, message, now_ms, out)
            return
        known = node.devices.get(device)
        if known is None:
            self._count(out, "before_birth", device_id, kind, "no DBIRTH")
            self._rebirth(node, now_ms, out)
        elif kind == "DDEATH":
            del node.devices[device]
            out.append(Status(node.group_id, device_id, "offline", self._ts(message, now_ms)))
        else:
            self._readings(node, device_id, known, message, now_ms, out)

    @staticmethod
    def _birth(message: pb.Payload) -> _Birth:
        declared = [m for m in message.metrics if m.name]
        normalised = names.normalise_all(m.name for m in declared)
        by_name: dict[str, MetricInfo] = {}
        by_alias: dict[int, MetricInfo] = {}
        datatypes: dict[str, int] = {}
        for m in declared:
            alias = int(m.alias) if m.HasField("alias") else None
            info = MetricInfo(m.name, normalised[m.name], alias, type_name(m.datatype), unit_of(m))
            by_name[m.name] = info
            datatypes[m.name] = m.datatype
            if alias is not None:
                by_alias[alias] = info
        return _Birth(by_name, by_alias, datatypes)

    def _metadata(
        self,
        node: _Node,
        device_id: str,
        birth: _Birth,
        message: pb.Payload,
        now_ms: int,
        out: list[Output],
    ) -> None:
        """The birth's metadata (stamped with the gateway's clock: the hub keeps the newest),
        if it has any data metric; a node with control metrics only has none to report."""
        normalised = {name: info.normalised for name, info in birth.by_name.items()}
        found = birth_metadata(message.metrics, normalised, is_control=_is_control)
        for problem in found.problems:
            self._count(out, problem.reason, device_id, problem.metric, problem.detail)
        if found.metrics or found.problems:
            out.append(Metadata(node.group_id, device_id, now_ms, found.metrics))

    def _readings(
        self,
        node: _Node,
        device_id: str,
        birth: _Birth,
        message: pb.Payload,
        now_ms: int,
        out: list[Output],
    ) -> None:
        by_ts: dict[int, dict[str, float | bool]] = {}
        unknown_alias = False
        payload_ts = self._ts(message, now_ms)
        for metric in message.metrics:
            if metric.name:
                info = birth.by_name.get(metric.name)
            elif metric.HasField("alias"):
                info = birth.by_alias.get(int(metric.alias))
            else:
                info = None
            if info is None:
                what = metric.name or f"alias {metric.alias}"
                self._count(out, "unknown_alias", device_id, what, "no birth defined it")
                unknown_alias = True
                continue
            if _is_control(info.original):
                self.counts["control_metric"] += 1
                continue
            if metric.is_historical:
                self._count(out, "historical", device_id, info.original, "kept out of live values")
                continue
            if metric.is_transient:
                self._count(out, "transient", device_id, info.original, "not stored by design")
                continue
            datatype = metric.datatype or birth.datatypes.get(info.original, 0)
            value = reading_value(metric, datatype)
            if isinstance(value, Skip):
                detail = f"datatype {type_name(datatype)}"
                self._count(out, value.reason, device_id, info.original, detail)
                continue
            ts = int(metric.timestamp) if metric.HasField("timestamp") else payload_ts
            by_ts.setdefault(ts, {})[info.normalised] = value
        for ts in sorted(by_ts):
            values = list(by_ts[ts].items())
            for start in range(0, len(values), MAX_METRICS):
                chunk = dict(values[start : start + MAX_METRICS])
                out.append(Reading(node.group_id, device_id, ts, chunk))
        if unknown_alias:
            self._rebirth(node, now_ms, out)

    # -- helpers -----------------------------------------------------------------------------

    def _node(self, where: topic.SparkplugTopic) -> _Node:
        key = (where.group_id, where.edge_node_id)
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = _Node(where.group_id, where.edge_node_id)
        return node

    @staticmethod
    def _device_id(where: topic.SparkplugTopic) -> str:
        if where.device_id is None:
            return where.edge_node_id
        return f"{where.edge_node_id}.{where.device_id}"

    @staticmethod
    def _ts(message: pb.Payload, now_ms: int) -> int:
        return int(message.timestamp) if message.HasField("timestamp") else now_ms

    def _refuse(
        self, out: list[Output], reason: str, detail: str, device: str | None
    ) -> list[Output]:
        self.counts[reason] += 1
        out.append(Refused(reason, detail, device))
        return out

    def _count(
        self, out: list[Output], reason: str, device_id: str, what: str, detail: str
    ) -> None:
        self.counts[reason] += 1
        key = (device_id, what, reason)
        if key not in self._noticed and len(self._noticed) < _NOTICE_KEYS_MAX:
            self._noticed.add(key)
            out.append(Notice("sparkplug_skipped", reason, device_id, f"{what}: {detail}"))
