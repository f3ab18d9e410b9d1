"""`iot-edge simulate --protocol opcua|modbus`: the fleet behind an OPC UA or a Modbus server,
and the EDGE_CONNECTORS_FILE a gateway needs to read it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TextIO

import yaml

from edge_gateway.simulators.fleet import FleetSpec, build_fleet
from edge_gateway.simulators.industrial_map import Protocol, connectors_file
from iot_common.logs import configure_logging

DEFAULT_PORTS = {"opcua": 4840, "modbus": 5020}


def _connectors_yaml(protocol: Protocol, host: str, port: int, spec: FleetSpec, rate: float) -> str:
    data = connectors_file(protocol, host, port, spec.device_ids(), rate)
    header = f"# EDGE_CONNECTORS_FILE for `iot-edge simulate --protocol {protocol}`\n"
    body: str = yaml.safe_dump(data, sort_keys=False)
    return header + body


async def _serve(protocol: Protocol, spec: FleetSpec, host: str, port: int, rate: float) -> int:
    from edge_gateway.simulators.industrial_servers import serve_fleet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return await serve_fleet(protocol, build_fleet(spec), host, port, rate, stop)


def run_industrial(args: argparse.Namespace, *, out: TextIO) -> int:
    protocol: Protocol = args.protocol
    host, port = args.listen or ("127.0.0.1", DEFAULT_PORTS[protocol])
    try:
        spec = FleetSpec(
            site=args.site,
            types=tuple(args.types),
            count_per_type=args.count_per_type,
            rate_hz=args.rate,
            seed=args.seed,
            anomaly_probability=args.anomaly_probability,
        )
    except ValueError as exc:
        print(f"simulate: error: {exc}", file=out)
        return 2
    if not logging.getLogger().handlers:
        configure_logging("INFO")
    # asyncua logs every node of its address space at INFO while the server starts.
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    text = _connectors_yaml(protocol, host, port, spec, args.rate)
    if args.connectors_file is not None:
        args.connectors_file.write_text(text)
        if not args.quiet:
            print(f"simulate: wrote {args.connectors_file}", file=out, flush=True)
    else:
        print(text, file=out, flush=True)
    written = asyncio.run(_serve(protocol, spec, host, port, args.rate))
    if not args.quiet:
        print(f"simulate: stopped after {written} device updates", file=out)
    return 0
