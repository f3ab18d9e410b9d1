"""A Sparkplug B edge node made with the PyPI `pysparkplug` package (run by its own venv's
python, see tests/support/sparkplug.py). It reads one command a line on stdin, acts, and answers
`ok <command>` on stdout:

  connect            NBIRTH, then DBIRTH of device `motor1` (their metrics with properties:
                     engUnit, engLow, engHigh, Documentation)
  data N             N rounds of NDATA and DDATA
  gap                skip one seq, then one DDATA
  ddeath             DDEATH of `motor1`
  crash              end without DISCONNECT: the broker publishes the NDEATH will

Usage: edge_node.py HOST PORT GROUP NODE"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from typing import Any

import pysparkplug as psp

host, port, group, node_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
connected = threading.Event()


def metric(name: str, datatype: psp.DataType, value: object) -> psp.Metric:
    return psp.Metric(
        timestamp=psp.get_current_timestamp(), name=name, datatype=datatype, value=value
    )


@dataclasses.dataclass(frozen=True)
class PropertiedMetric(psp.Metric):  # type: ignore[misc]  # pysparkplug is not in our venv
    """pysparkplug's Metric with a PropertySet, which its dataclass does not model (0.6.1): added
    to the protobuf metric it encodes, as Ignition's MQTT Transmission sends tag properties."""

    properties: tuple[tuple[str, str | int | float], ...] = ()

    def to_pb(self, include_dtype: bool) -> Any:
        metric = super().to_pb(include_dtype)
        for key, value in self.properties:
            metric.properties.keys.append(key)
            pv = metric.properties.values.add()
            if isinstance(value, str):
                pv.type = int(psp.DataType.STRING)
                pv.string_value = value
            elif isinstance(value, int):  # signed, as two's complement (spec 6.4.16)
                pv.type = int(psp.DataType.INT32)
                pv.int_value = value & 0xFFFFFFFF
            else:
                pv.type = int(psp.DataType.DOUBLE)
                pv.double_value = float(value)
        return metric


def born(name: str, datatype: psp.DataType, value: object, **props: str | int | float) -> Any:
    return PropertiedMetric(
        timestamp=psp.get_current_timestamp(),
        name=name,
        datatype=datatype,
        value=value,
        properties=tuple(props.items()),
    )


def next_ms() -> None:
    # Each round its own millisecond: (device, metric, ts) is the readings' primary key.
    start = psp.get_current_timestamp()
    while psp.get_current_timestamp() == start:
        threading.Event().wait(0.0005)


def node_metrics(i: int) -> list[psp.Metric]:
    return [
        metric("Hydraulic/Pressure (bar)", psp.DataType.DOUBLE, 100.0 + i),
        metric("Running", psp.DataType.BOOLEAN, i % 2 == 0),
    ]


def device_metrics(i: int) -> list[psp.Metric]:
    return [
        metric("Motor 1/Temperature", psp.DataType.FLOAT, 40.0 + i),
        metric("Speed RPM", psp.DataType.INT32, -10 - i),
    ]


client = psp.Client()
birth_node = [
    born("Hydraulic/Pressure (bar)", psp.DataType.DOUBLE, 100.0, engUnit="bar", engLow=0.0,
         engHigh=400.0, Documentation="main cylinder"),
    born("Running", psp.DataType.BOOLEAN, True),
    metric("Label", psp.DataType.STRING, "press"),
]  # fmt: skip
birth_device = [
    born("Motor 1/Temperature", psp.DataType.FLOAT, 40.0, engUnit="°C", engLow=-20, engHigh=150),
    born("Speed RPM", psp.DataType.INT32, -10, engUnit="rpm", engLow=10.0, engHigh=5.0),
]  # the last has a bad range: its metadata is left out, its readings are not
node = psp.EdgeNode(group, node_id, birth_node, client)
round_no = 0


def wait_published() -> None:
    # pysparkplug publishes QoS 0 from paho's queue; an empty queue means it is on the wire.
    inner = client._client
    deadline = 100_000
    while inner._out_messages and deadline:
        deadline -= 1
        threading.Event().wait(0.001)


for line in sys.stdin:
    command, *args = line.split()
    if command == "connect":
        # Registered first, so the DBIRTH follows the NBIRTH once, from the connect callback.
        node.register(psp.Device("motor1", birth_device))
        node.connect(host, port=port, blocking=False)
        while not node._connected:
            threading.Event().wait(0.005)
        with client._client._in_callback_mutex:
            pass  # the connect callback, which publishes the births, has returned
    elif command == "data":
        for _ in range(int(args[0])):
            next_ms()
            round_no += 1
            node.update(node_metrics(round_no))
            node.update_device("motor1", device_metrics(round_no))
    elif command == "gap":
        node._seq  # noqa: B018  # takes a seq that is never published
        next_ms()
        round_no += 1
        node.update_device("motor1", device_metrics(round_no))
    elif command == "ddeath":
        node.deregister("motor1")
    elif command == "crash":
        wait_published()
        os._exit(0)  # no DISCONNECT: the broker sends the will
    wait_published()
    print(f"ok {line.strip()}", flush=True)
