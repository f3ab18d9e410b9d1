"""`iot-edge simulate`: run the device simulators against an MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from edge_gateway.mqtt_tls import client_context
from edge_gateway.settings import MqttEndpoint
from edge_gateway.simulators.catalog import ALL_TYPES
from edge_gateway.simulators.fleet import parse_types
from edge_gateway.simulators.runner import SimulatorConfig, SimulatorStats, run_simulators
from edge_gateway.simulators.sparkplug_node import DEFAULT_NODE_ID, SparkplugNode
from iot_common.logs import configure_logging

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
PROGRESS_INTERVAL_S = 5.0


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """`mqtt[s]://user:pass@host:port` -> (host, port, username, password), parsed as the
    gateway parses EDGE_MQTT_URL (the same schemes, defaults and errors)."""
    endpoint = MqttEndpoint(url)
    return endpoint.host, endpoint.port, endpoint.username, endpoint.password


def _types(text: str) -> tuple[str, ...]:
    try:
        return parse_types(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run simulated factory devices that publish telemetry over MQTT",
        description=(
            "Simulate CNC spindles, hydraulic presses, conveyors, air compressors and cleanroom "
            "sensors. Each device keeps its own MQTT connection, publishes telemetry on "
            "plant/{site}/{device_id}/telemetry, a retained online/offline status, and injects "
            "random faults (spike, drift, stuck, out_of_range, dropout). With --protocol opcua "
            "or modbus the same devices are served instead by an OPC UA server (a variable per "
            "metric, node id ns=2;s={device_id}.{metric}) or a Modbus TCP server (a unit id per "
            "device: float32 holding registers, uint32 counters, coils for flags), and the "
            "matching EDGE_CONNECTORS_FILE is printed (or written with --connectors-file) for a "
            "gateway to read them (docs/connectors.md). With --protocol "
            "sparkplug the devices are instead the Sparkplug B devices of one edge node "
            "(group id = --site, edge node id = --sparkplug-node) on one connection: NBIRTH and "
            "DBIRTHs with metric names, aliases and units, DDATA by alias, DDEATH and NDEATH "
            "(also the MQTT will), and new births on a Node Control/Rebirth command; the gateway "
            "needs EDGE_SPARKPLUG_ENABLED=true (docs/sparkplug.md)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--mqtt-url",
        default=DEFAULT_MQTT_URL,
        help="broker as mqtt://[user:password@]host[:port], or mqtts:// for TLS (port 8883)",
    )
    parser.add_argument(
        "--cafile",
        type=Path,
        help="mqtts: CA certificate(s) that signed the broker's certificate (PEM; default: the "
        "system's trust store)",
    )
    parser.add_argument(
        "--certfile", type=Path, help="mqtts: client certificate (PEM) for mutual TLS"
    )
    parser.add_argument("--keyfile", type=Path, help="mqtts: the client certificate's key (PEM)")
    parser.add_argument(
        "--protocol",
        choices=("mqtt", "sparkplug", "opcua", "modbus"),
        default="mqtt",
        help="mqtt: our JSON on plant/{site}/{device}/telemetry, one connection per device; "
        "sparkplug: Sparkplug B 3.0 protobuf on spBv1.0/{site}/..., one edge node; opcua, "
        "modbus: serve the devices from an OPC UA or a Modbus TCP server",
    )
    parser.add_argument(
        "--sparkplug-node",
        default=DEFAULT_NODE_ID,
        help="--protocol sparkplug: the edge node id (readings arrive as device "
        "{node}.{device_id})",
    )
    parser.add_argument("--site", default="site-1", help="site name used in topics")
    parser.add_argument(
        "--types",
        type=_types,
        default=ALL_TYPES,
        metavar="all|none|TYPE[,TYPE...]",
        help=f"device types to simulate, from: {', '.join(ALL_TYPES)}",
    )
    parser.add_argument(
        "--count-per-type", type=int, default=1, help="number of devices of each type"
    )
    parser.add_argument(
        "--rate", type=_positive_float, default=1.0, help="readings per second per device"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    parser.add_argument(
        "--anomaly-probability",
        type=_probability,
        default=0.001,
        help="chance per reading that a fault starts (0 disables faults)",
    )
    parser.add_argument(
        "--max-messages",
        type=_positive_int,
        default=None,
        help="stop after this many readings per device (default: run until interrupted)",
    )
    parser.add_argument(
        "--listen",
        type=_host_port,
        default=None,
        metavar="HOST:PORT",
        help="opcua/modbus: where the server listens (default 127.0.0.1:4840 for opcua, "
        "127.0.0.1:5020 for modbus)",
    )
    parser.add_argument(
        "--connectors-file",
        type=Path,
        default=None,
        help="opcua/modbus: write the matching EDGE_CONNECTORS_FILE here instead of printing it",
    )
    parser.add_argument("--quiet", action="store_true", help="no settings banner or progress")
    parser.set_defaults(func=run_command)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    endpoint = MqttEndpoint(args.mqtt_url)
    files = (args.cafile, args.certfile, args.keyfile)
    tls = None
    if endpoint.tls:
        tls = client_context(*files, names=("--cafile", "--certfile", "--keyfile"))
    elif any(f is not None for f in files):
        raise ValueError("--cafile, --certfile and --keyfile need an mqtts:// --mqtt-url")
    return SimulatorConfig(
        host=endpoint.host,
        port=endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        tls_context=tls,
        site=args.site,
        types=tuple(args.types),
        count_per_type=args.count_per_type,
        rate_hz=args.rate,
        seed=args.seed,
        anomaly_probability=args.anomaly_probability,
        max_messages_per_device=args.max_messages,
    )


def format_progress(stats: SimulatorStats) -> str:
    return (
        f"published={stats.published} acked={stats.acked} anomalies={stats.anomalies} "
        f"connected={stats.connected}/{stats.devices} dropped={stats.dropped}"
    )


async def _progress(stats: SimulatorStats, out: TextIO, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        print(f"simulate: {format_progress(stats)}", file=out, flush=True)


async def run_async(
    config: SimulatorConfig,
    *,
    quiet: bool = False,
    out: TextIO = sys.stdout,
    install_signals: bool = True,
) -> SimulatorStats:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stats = SimulatorStats()
    installed: list[signal.Signals] = []
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    progress = None if quiet else asyncio.create_task(_progress(stats, out, PROGRESS_INTERVAL_S))
    try:
        return await run_simulators(config, stop, stats)
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_sparkplug(config: SimulatorConfig, node_id: str) -> SimulatorStats:
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return SparkplugNode(config, node_id).run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_settings(config: SimulatorConfig, out: TextIO) -> None:
    print("simulate: effective settings", file=out)
    for key, value in config.describe().items():
        print(f"  {key} = {value}", file=out)
    out.flush()


def run_command(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    if args.protocol in ("opcua", "modbus"):
        from edge_gateway.simulators.industrial_cli import run_industrial

        return run_industrial(args, out=out)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"simulate: error: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # the host CLI may have set logging up already
        configure_logging("INFO")
    if not args.quiet:
        print_settings(config, out)
    if args.protocol == "sparkplug":
        stats = run_sparkplug(config, getattr(args, "sparkplug_node", DEFAULT_NODE_ID))
    else:
        stats = asyncio.run(run_async(config, quiet=args.quiet, out=out))
    if not args.quiet:
        print(f"simulate: stopped {format_progress(stats)}", file=out)
    return 0
