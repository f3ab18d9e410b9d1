"""Turn one MQTT message into one buffer record: a normalised reading, a device status, or a
dead letter with its reason. Pure logic: no sockets, no clock, no database."""

from __future__ import annotations

import logging
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import ValidationError

from edge_gateway.buffer import BufferRecord
from edge_gateway.device_metadata import metadata_record
from edge_gateway.sparkplug import topic as sparkplug_topic
from edge_gateway.sparkplug.host import (
    Command,
    Metadata,
    Notice,
    Output,
    Reading,
    Refused,
    SparkplugHost,
    Status,
)
from protocol import topics
from protocol.codec import (
    DecodeError,
    decode_status,
    encode,
    parse_topic,
    telemetry_record,
)
from protocol.models import DeadLetter
from protocol.topics import MqttTopic

log = logging.getLogger("edge.routing")

MAX_DEAD_LETTER_BYTES: Final = 128 * 1024
# Parsed device topics kept (a fleet's worth); past this the cache starts over.
_TOPIC_CACHE_MAX: Final = 65_536

RouteKind = Literal["reading", "status", "metadata", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Routed:
    kind: RouteKind
    record: BufferRecord
    device_id: str | None
    reason: str | None = None


@dataclass(slots=True)
class _DeviceSeq:
    last: int
    recent: OrderedDict[int, int] = field(default_factory=OrderedDict)


class SeqTracker:
    """Per-device `seq` bookkeeping: duplicates, forward jumps (gaps) and counter resets.

    A duplicate is a seq seen among the device's last `window` messages *with the same identity*
    (the payload's checksum: a redelivery is byte-identical). The same seq with another payload is
    a device that restarted its counter: its data is real and is kept.
    """

    def __init__(self, window: int = 32) -> None:
        self._window = window
        self._devices: dict[str, _DeviceSeq] = {}
        self.gaps_total = 0
        self.resets_total = 0

    def observe(self, device_id: str, seq: int, identity: int) -> bool:
        """Record a message; False if it is a duplicate (and then nothing is recorded)."""
        state = self._devices.get(device_id)
        if state is None:
            self._devices[device_id] = state = _DeviceSeq(last=seq)
        elif state.recent.get(seq) == identity:
            return False
        elif seq > state.last:
            self.gaps_total += seq - state.last - 1
            state.last = seq
        elif state.last - seq >= self._window:
            self.resets_total += 1
            state.last = seq
        # else: a late arrival within the window, or a recent seq with a new payload: kept.
        state.recent[seq] = identity
        state.recent.move_to_end(seq)
        if len(state.recent) > self._window:
            state.recent.popitem(last=False)
        return True


class MessageRouter:
    def __init__(
        self,
        gateway_id: str,
        *,
        max_past_ms: int,
        max_future_ms: int,
        seq_window: int = 32,
        kafka_topics: topics.KafkaTopics | None = None,
        sparkplug: SparkplugHost | None = None,
    ) -> None:
        """`sparkplug`: the Sparkplug B host for spBv1.0/ topics (None: they are not taken)."""
        self.gateway_id = gateway_id
        # Records carry their prefixed topic into the buffer: what was routed under one prefix
        # is forwarded there, even after a restart with another.
        self.topics = kafka_topics or topics.KafkaTopics()
        self._telemetry_topic = self.topics.telemetry
        self._parsed: dict[str, MqttTopic] = {}
        self.max_past_ms = max_past_ms
        self.max_future_ms = max_future_ms
        self.seq = SeqTracker(seq_window)
        self.dead_letters_by_reason: Counter[str] = Counter()
        self.sparkplug = sparkplug
        # The Sparkplug host's side effects, for the intake to carry out after its commit.
        self.commands: list[Command] = []
        self.notices: list[Notice] = []

    def takes(self, mqtt_topic: str) -> bool:
        """Whether a published topic belongs in the intake."""
        if topics.matches_device_filters(mqtt_topic):
            return True
        return self.sparkplug is not None and sparkplug_topic.is_inbound(mqtt_topic)

    def route_all(self, mqtt_topic: str, payload: bytes, received_ts: int) -> list[Routed]:
        """One MQTT message -> its records: one for our topics; for a Sparkplug message none
        (held, skipped), one, or several (a death's statuses, readings released in seq order)."""
        if self.sparkplug is not None and mqtt_topic.startswith(sparkplug_topic.NAMESPACE + "/"):
            if not sparkplug_topic.is_inbound(mqtt_topic):
                return []  # STATE, NCMD, DCMD: other hosts' and our own, not data
            outputs = self.sparkplug.receive(mqtt_topic, payload, received_ts)
            return self._from_host(outputs, mqtt_topic, payload, received_ts)
        return [self.route(mqtt_topic, payload, received_ts)]

    def tick(self, now_ms: int) -> list[Routed]:
        """Sparkplug reorder timeouts: held messages released, rebirths requested."""
        if self.sparkplug is None:
            return []
        return self._from_host(self.sparkplug.tick(now_ms), "", b"", now_ms)

    def _from_host(
        self, outputs: list[Output], mqtt_topic: str, payload: bytes, received_ts: int
    ) -> list[Routed]:
        routed = []
        for out in outputs:
            # Readings and statuses take the same validation as a device's own JSON.
            if isinstance(out, Reading):
                where = topics.telemetry_topic(out.site, out.device_id)
                routed.append(self.route(where, out.payload(), received_ts))
            elif isinstance(out, Status):
                where = topics.status_topic(out.site, out.device_id)
                routed.append(self.route(where, out.payload(), received_ts))
            elif isinstance(out, Metadata):
                record = self._metadata(out)
                if record is not None:
                    routed.append(Routed("metadata", record, out.device_id))
            elif isinstance(out, Refused):
                error = DecodeError(out.reason, out.detail)
                routed.append(
                    self._dead_letter(error, mqtt_topic, payload, received_ts, out.device_id)
                )
            elif isinstance(out, Command):
                self.commands.append(out)
            else:
                self.notices.append(out)
        return routed

    def _metadata(self, out: Metadata) -> BufferRecord | None:
        """A birth's metadata as an `iot.device-metadata` record, source `sparkplug`. The host
        checked each metric against the wire model, so a refusal here is a bug: logged, and the
        birth's readings go on."""
        try:
            return metadata_record(
                site=out.site,
                device_id=out.device_id,
                gateway_id=self.gateway_id,
                ts_ms=out.ts,
                metadata={"metrics": out.metrics},
                source="sparkplug",
                kafka_topics=self.topics,
            )
        except ValidationError as exc:
            log.error(
                "device_metadata_refused",
                extra={"device": out.device_id, "source": "sparkplug", "error": str(exc)[:500]},
            )
            return None

    def take_side_effects(self) -> tuple[list[Command], list[Notice]]:
        commands, notices = self.commands, self.notices
        self.commands, self.notices = [], []
        return commands, notices

    def route(self, mqtt_topic: str, payload: bytes, received_ts: int) -> Routed:
        device_id: str | None = None
        try:
            where = self._parse_topic(mqtt_topic)
            device_id = where.device_id
            if where.kind == "status":
                status = decode_status(
                    where,
                    payload,
                    received_ts=received_ts,
                    gateway_id=self.gateway_id,
                    max_future_ms=self.max_future_ms,
                )
                return Routed(
                    "status",
                    self._record(
                        self.topics.device_status, status.device_id, encode(status), received_ts
                    ),
                    device_id,
                )
            seq, value = telemetry_record(
                where,
                payload,
                received_ts=received_ts,
                gateway_id=self.gateway_id,
                max_past_ms=self.max_past_ms,
                max_future_ms=self.max_future_ms,
            )
            if seq is not None and not self.seq.observe(device_id, seq, zlib.crc32(payload)):
                raise DecodeError(
                    "duplicate_seq", f"seq {seq} already received with the same payload"
                )
            return Routed(
                "reading",
                BufferRecord(self._telemetry_topic, device_id.encode(), value, received_ts),
                device_id,
            )
        except DecodeError as exc:
            return self._dead_letter(exc, mqtt_topic, payload, received_ts, device_id)

    def _parse_topic(self, mqtt_topic: str) -> MqttTopic:
        """`parse_topic`, remembered per topic: a device publishes on the same few topics."""
        where = self._parsed.get(mqtt_topic)
        if where is None:
            where = parse_topic(mqtt_topic)  # a bad topic raises, and is not remembered
            if len(self._parsed) >= _TOPIC_CACHE_MAX:
                self._parsed.clear()
            self._parsed[mqtt_topic] = where
        return where

    def _dead_letter(
        self,
        exc: DecodeError,
        mqtt_topic: str,
        payload: bytes,
        received_ts: int,
        device_id: str | None,
    ) -> Routed:
        self.dead_letters_by_reason[exc.reason] += 1
        letter = DeadLetter(
            error=str(exc),
            mqtt_topic=mqtt_topic,
            gateway_id=self.gateway_id,
            received_ts=received_ts,
            device_id=device_id,
            payload=payload,
        )
        headers = letter.headers()
        if len(payload) > MAX_DEAD_LETTER_BYTES:
            # Kafka refuses records over ~1 MB; the head of the payload is enough to diagnose it.
            headers += (("truncated_from", str(len(payload)).encode()),)
            payload = payload[:MAX_DEAD_LETTER_BYTES]
        record = BufferRecord(
            topic=self.topics.telemetry_dlq,
            key=device_id.encode() if device_id else None,
            value=payload,
            created_ms=received_ts,
            headers=headers,
        )
        return Routed("dead_letter", record, device_id, exc.reason)

    @staticmethod
    def _record(topic: str, device_id: str, value: bytes, received_ts: int) -> BufferRecord:
        return BufferRecord(
            topic=topic, key=device_id.encode(), value=value, created_ms=received_ts
        )
