"""Connectors benchmark: OPC UA values/s through the gateway (subscription -> intake -> durable
buffer -> Kafka) against the JSON MQTT path in the same run, and Modbus TCP values/s at a given
poll rate.

* JSON MQTT: `bench.edge_pipeline`'s run (mosquitto_pub, QoS 1, 5 values per reading, into the
  embedded broker) until Kafka acknowledged every reading: values/s = readings/s x 5.
* OPC UA: `bench.opcua_load` serves DEVICES x NODES variables rewritten as fast as it can; the
  gateway subscribes to all of them. Values/s is what the connector handed to the intake over a
  measured window, counted only if the forwarder kept up (the buffer does not grow).
* Modbus: `iot-edge simulate --protocol modbus` (the five devices, --count-per-type copies)
  polled at --modbus-poll-hz.

Its gateways produce to the bench's own topics (`bench.isolation`). Prints figures; asserts
nothing. The OPC UA server, the gateway and Kafka share this machine's cores."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.edge_pipeline import make_input, run_gateway
from bench.isolation import TOPICS, isolate_children
from bench.results import Figure, record
from tests.support.gateway import GatewayProcess
from tests.support.industrial_sim import IndustrialSimulator
from tests.support.kafka import ensure_topics
from tests.support.process import ROOT, free_port
from tests.support.services import kafka_bootstrap
from tests.support.waiting import wait_until

JSON_VALUES_PER_READING = 5


def log(msg: str) -> None:
    print(msg, flush=True)


def _connector(gw: GatewayProcess) -> dict[str, Any]:
    status = gw.status()
    connector: dict[str, Any] = status["connectors"][0]
    return {**connector, "depth": status["buffer"]["depth"],
            "forwarded": status["counters"]["forwarded_total"]}  # fmt: skip


def _cpu_s(gw: GatewayProcess) -> float:
    assert gw.proc is not None
    times = psutil.Process(gw.proc.pid).cpu_times()
    return float(times.user + times.system)


def measure_connector(gw: GatewayProcess, warmup_s: float, window_s: float) -> dict[str, Any]:
    """Values/s the connector produced over `window_s` after `warmup_s`, what the buffer held at
    the end (a forwarder that keeps up holds little), and the gateway's CPU per 1,000 values."""
    wait_until(lambda: _connector(gw)["values_total"] > 0, 60, "the first connector values")
    time.sleep(warmup_s)  # the measured window: a fixed span of wall time, not a synchronisation
    first, t0, cpu0 = _connector(gw), time.monotonic(), _cpu_s(gw)
    time.sleep(window_s)
    last, t1, cpu1 = _connector(gw), time.monotonic(), _cpu_s(gw)
    values = last["values_total"] - first["values_total"]
    return {
        "cpu_ms_per_1000": (cpu1 - cpu0) / values * 1e6 if values else 0.0,
        "values_per_s": (last["values_total"] - first["values_total"]) / (t1 - t0),
        "readings_per_s": (last["readings_total"] - first["readings_total"]) / (t1 - t0),
        "forwarded_per_s": (last["forwarded"] - first["forwarded"]) / (t1 - t0),
        "depth_end": last["depth"],
        "errors": sum(last["errors"].values()),
        "errors_by_reason": last["errors"],
    }


def gateway_with(connectors_file: Path, bootstrap: str, workdir: Path) -> GatewayProcess:
    site = f"bench-{uuid.uuid4().hex[:6]}"
    return GatewayProcess(
        workdir / site,
        {
            "EDGE_GATEWAY_ID": site,
            "EDGE_SITE": site,
            "EDGE_KAFKA_BOOTSTRAP": bootstrap,
            "EDGE_LOG_LEVEL": "WARNING",
            "EDGE_MQTT_PORT": str(free_port()),
            "EDGE_CONNECTORS_FILE": str(connectors_file),
        },
    )


def run_opcua(bootstrap: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    port, path = free_port(), workdir / "bench-opcua.yaml"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.opcua_load", str(port), str(args.opcua_devices),
         str(args.opcua_nodes), str(path), str(args.publish_ms)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(path.exists, 60, "the OPC UA load server")
        gw = gateway_with(path, bootstrap, workdir).start()
        try:
            return measure_connector(gw, args.warmup_s, args.window_s)
        finally:
            gw.terminate()
    finally:
        server.terminate()
        server.wait(30)


def run_modbus(bootstrap: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    simulator = IndustrialSimulator("modbus", workdir, rate_hz=args.modbus_poll_hz).start()
    try:
        gw = gateway_with(simulator.connectors_file, bootstrap, workdir).start()
        try:
            return measure_connector(gw, args.warmup_s, args.window_s)
        finally:
            gw.terminate()
    finally:
        simulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--json-per-device",
        type=int,
        default=10_000,
        help="JSON readings per device (5 devices, 5 values each)",
    )
    parser.add_argument("--opcua-devices", type=int, default=5)
    parser.add_argument("--opcua-nodes", type=int, default=100, help="variables per device")
    parser.add_argument(
        "--publish-ms", type=float, default=50, help="the OPC UA subscription's publishing interval"
    )
    parser.add_argument("--modbus-poll-hz", type=float, default=10)
    parser.add_argument("--warmup-s", type=float, default=5)
    parser.add_argument("--window-s", type=float, default=20)
    args = parser.parse_args()  # fmt: skip
    bootstrap = kafka_bootstrap()
    isolate_children()
    asyncio.run(ensure_topics(bootstrap, TOPICS.all()))
    with tempfile.TemporaryDirectory(prefix="connectors-bench-") as tmp:
        workdir = Path(tmp)
        n = args.json_per_device * 5
        log(f"JSON MQTT: {n:,} readings x {JSON_VALUES_PER_READING} values, QoS 1 ...")
        files = make_input(workdir, args.json_per_device)
        readings_per_s, _rss, cpu_per_1000 = run_gateway(bootstrap, files, n, external=None,
                                                         workdir=workdir)  # fmt: skip
        json_values = readings_per_s * JSON_VALUES_PER_READING
        json_cpu = cpu_per_1000 / JSON_VALUES_PER_READING * 1000  # ms per 1,000 values
        log(f"OPC UA: {args.opcua_devices} x {args.opcua_nodes} variables ...")
        opcua = run_opcua(bootstrap, workdir, args)
        log(f"Modbus: 5 devices polled at {args.modbus_poll_hz:g} Hz ...")
        modbus = run_modbus(bootstrap, workdir, args)
    ratio = opcua["values_per_s"] / json_values if json_values else 0.0
    record(Figure("connectors", "OPC UA values/s through the gateway", opcua["values_per_s"],
                  "values/s", ratio, "JSON MQTT values/s"))  # fmt: skip
    record(Figure("connectors", f"Modbus values/s at {args.modbus_poll_hz:g} Hz polls",
                  modbus["values_per_s"], "values/s"))  # fmt: skip
    log("")
    log("== connectors benchmark ==")
    log(
        f"JSON MQTT path   {json_values:,.0f} values/s ({readings_per_s:,.0f} readings/s to "
        f"Kafka), gateway CPU {json_cpu:.0f} ms per 1,000 values (start-up included)"
    )
    log(
        f"OPC UA           {opcua['values_per_s']:,.0f} values/s in "
        f"{opcua['readings_per_s']:,.0f} readings/s, forwarded {opcua['forwarded_per_s']:,.0f} "
        f"readings/s, buffer depth at end {opcua['depth_end']:,.0f}, problems "
        f"{opcua['errors']:.0f} {opcua['errors_by_reason']}; {ratio:.2f} x the JSON path; "
        f"gateway CPU {opcua['cpu_ms_per_1000']:.0f} ms per 1,000 values"
    )
    log(
        f"Modbus           {modbus['values_per_s']:,.0f} values/s in "
        f"{modbus['readings_per_s']:,.0f} readings/s at {args.modbus_poll_hz:g} Hz polls "
        f"(5 devices, 31 values per poll round), problems {modbus['errors']:.0f}; gateway CPU "
        f"{modbus['cpu_ms_per_1000']:.0f} ms per 1,000 values"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
