"""`iot-edge simulate --protocol sparkplug`: the simulated fleet as one Sparkplug B edge node.

Group id = the site, edge node id = `--sparkplug-node`, each simulated machine a Sparkplug device
(its device id unchanged). Births carry every metric's name (the catalog's name in a
tag-like form, `spindle_temp_c` -> `Spindle Temp C`, which the gateway normalises back), alias,
datatype and unit (`engUnit` property); data goes by alias only; the NDEATH is the MQTT will and
is also sent on a clean stop, after each device's DDEATH. A `Node Control/Rebirth` NCMD makes
the node publish its births again. Encoded with edge_gateway.sparkplug's protobuf module."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_gateway.simulators.catalog import metric_specs
from edge_gateway.simulators.device import SimulatedDevice
from edge_gateway.simulators.fleet import build_fleet
from edge_gateway.simulators.runner import SimulatorConfig, SimulatorStats
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug import topic as sp_topic
from edge_gateway.sparkplug.host import BDSEQ_METRIC, REBIRTH_METRIC

log = logging.getLogger("edge.simulate.sparkplug")

DEFAULT_NODE_ID = "simulator"


def tag_name(metric: str) -> str:
    """`spindle_temp_c` -> `Spindle Temp C`: how a PLC tag might read; normalises back."""
    return " ".join(part.capitalize() for part in metric.split("_"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _set_value(metric: pb.Payload.Metric, value: float | bool) -> None:
    if isinstance(value, bool):
        metric.datatype = pb.Boolean
        metric.boolean_value = value
    else:
        metric.datatype = pb.Double
        metric.double_value = float(value)


@dataclass
class NodeEncoder:
    """The node's Sparkplug payloads and its seq (0..255, wrapping; 0 again at each NBIRTH).
    Pure: the caller gives the clock and publishes the bytes."""

    group_id: str
    node_id: str
    devices: list[SimulatedDevice]
    bd_seq: int = 0
    _seq: int = 0
    _aliases: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        alias = 1
        for device in self.devices:
            for name in metric_specs(device.device_type):
                self._aliases[(device.device_id, name)] = alias
                alias += 1

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def topic(self, kind: str, device_id: str | None = None) -> str:
        base = f"{sp_topic.NAMESPACE}/{self.group_id}/{kind}/{self.node_id}"
        return base if device_id is None else f"{base}/{device_id}"

    def ndeath(self, ts: int) -> bytes:
        payload = pb.Payload(timestamp=ts)
        payload.metrics.add(name=BDSEQ_METRIC, datatype=pb.Int64, long_value=self.bd_seq)
        return bytes(payload.SerializeToString())

    def nbirth(self, ts: int) -> bytes:
        self._seq = 0
        payload = pb.Payload(timestamp=ts, seq=self._next_seq())
        payload.metrics.add(name=BDSEQ_METRIC, datatype=pb.Int64, long_value=self.bd_seq)
        payload.metrics.add(name=REBIRTH_METRIC, datatype=pb.Boolean, boolean_value=False)
        payload.metrics.add(name="Devices", datatype=pb.Int32, int_value=len(self.devices))
        return bytes(payload.SerializeToString())

    def dbirth(self, device: SimulatedDevice, metrics: dict[str, float | bool], ts: int) -> bytes:
        payload = pb.Payload(timestamp=ts, seq=self._next_seq())
        for name, spec in metric_specs(device.device_type).items():
            metric = payload.metrics.add(
                name=tag_name(name), alias=self._aliases[(device.device_id, name)], timestamp=ts
            )
            default: float | bool = False if spec.kind == "flag" else spec.low
            _set_value(metric, metrics.get(name, default))
            metric.properties.keys.append("engUnit")
            metric.properties.values.add(type=pb.String, string_value=spec.unit)
        return bytes(payload.SerializeToString())

    def ddata(self, device: SimulatedDevice, metrics: dict[str, float | bool], ts: int) -> bytes:
        payload = pb.Payload(timestamp=ts, seq=self._next_seq())
        for name, value in metrics.items():
            metric = payload.metrics.add(alias=self._aliases[(device.device_id, name)])
            _set_value(metric, value)
        return bytes(payload.SerializeToString())

    def ddeath(self, ts: int) -> bytes:
        return bytes(pb.Payload(timestamp=ts, seq=self._next_seq()).SerializeToString())


class SparkplugNode:
    """Runs the fleet as one edge node on one MQTT connection until `stop` or max messages."""

    def __init__(
        self,
        config: SimulatorConfig,
        node_id: str = DEFAULT_NODE_ID,
        stats: SimulatorStats | None = None,
    ) -> None:
        self.config = config
        self.stats = stats if stats is not None else SimulatorStats()
        self.devices = build_fleet(config.fleet_spec())
        self.stats.devices = len(self.devices)
        self.encoder = NodeEncoder(config.site, node_id, self.devices, bd_seq=_now_ms() % 256)
        self._rebirth = threading.Event()
        self._connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sparkplug-{config.site}-{node_id}"
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls_context is not None:
            client.tls_set_context(config.tls_context)
        client.will_set(self.encoder.topic("NDEATH"), self.encoder.ndeath(_now_ms()), qos=1)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = lambda *_: self._connected.clear()
        self._client = client

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        client.subscribe(self.encoder.topic("NCMD"), qos=1)
        self._rebirth.set()  # births on every (re)connect
        self._connected.set()
        self.stats.connects += 1

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            payload = pb.Payload.FromString(message.payload)
        except Exception:  # noqa: BLE001  # a bad command is not the simulator's problem
            log.warning("sparkplug_bad_command", extra={"topic": message.topic})
            return
        if any(m.name == REBIRTH_METRIC and m.boolean_value for m in payload.metrics):
            log.info("sparkplug_rebirth_requested", extra={"node": self.encoder.node_id})
            self._rebirth.set()

    def _publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.stats.published += 1
        else:
            self.stats.dropped += 1

    def _births(self, ts: int) -> None:
        enc = self.encoder
        self._publish(enc.topic("NBIRTH"), enc.nbirth(ts), qos=1)
        for device in self.devices:
            current = device.machine.step(ts)
            self._publish(enc.topic("DBIRTH", device.device_id), enc.dbirth(device, current, ts), 1)

    def run(self, stop: threading.Event) -> SimulatorStats:
        self._client.connect_async(
            self.config.host, self.config.port, keepalive=self.config.keepalive_s
        )
        self._client.loop_start()
        period_s = 1.0 / self.config.rate_hz
        limit = self.config.max_messages_per_device
        rounds = 0
        try:
            while not stop.is_set() and (limit is None or rounds < limit):
                if not self._connected.wait(0.5):
                    continue
                now = _now_ms()
                if self._rebirth.is_set():
                    self._rebirth.clear()
                    self._births(now)
                for device in self.devices:
                    reading = device.next_payload(now)
                    if reading is not None:
                        topic = self.encoder.topic("DDATA", device.device_id)
                        self._publish(topic, self.encoder.ddata(device, reading["metrics"], now))
                rounds += 1
                stop.wait(max(0.0, period_s - (_now_ms() - now) / 1000))
        finally:
            self._stop()
        return self.stats

    def _stop(self) -> None:
        if self._connected.is_set():
            now = _now_ms()
            for device in self.devices:
                self._publish(
                    self.encoder.topic("DDEATH", device.device_id), self.encoder.ddeath(now), 1
                )
            info = self._client.publish(
                self.encoder.topic("NDEATH"), self.encoder.ndeath(now), qos=1
            )
            info.wait_for_publish(10)
        self._client.disconnect()
        self._client.loop_stop()
