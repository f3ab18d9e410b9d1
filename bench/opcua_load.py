"""The OPC UA server of `bench.connectors`: `devices` x `nodes` Double variables, every one
rewritten as fast as the server takes it (each write a new value with its own source timestamp),
and the connectors file that subscribes to all of them. Run by the bench as a subprocess:
`python -m bench.opcua_load PORT DEVICES NODES CONNECTORS_FILE PUBLISH_MS`."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from asyncua import Server, ua


def connectors_file(port: int, devices: int, nodes: int, publish_ms: float) -> dict[str, object]:
    return {
        "connectors": [
            {
                "name": "bench-opcua",
                "kind": "opcua",
                "endpoint": f"opc.tcp://127.0.0.1:{port}/bench/",
                "publishing_interval_ms": publish_ms,
                "devices": [
                    {
                        "device_id": f"dev-{d}",
                        "type": "bench",
                        "nodes": [
                            {
                                "metric": f"v{n}",
                                "node_id": f"ns=2;s=dev-{d}.v{n}",
                                "sampling_interval_ms": 0,
                            }
                            for n in range(nodes)
                        ],
                    }
                    for d in range(devices)
                ],
            }
        ]
    }


async def serve(port: int, devices: int, nodes: int, path: Path, publish_ms: float) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:iot-monitoring:bench")
    ids = []
    for d in range(devices):
        obj = await server.nodes.objects.add_object(ua.NodeId(f"dev-{d}", ns), f"dev-{d}")
        for n in range(nodes):
            var = await obj.add_variable(ua.NodeId(f"dev-{d}.v{n}", ns), f"v{n}", 0.0)
            ids.append(var.nodeid)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        # Written once the server listens: the bench starts the gateway when it appears.
        text = yaml.safe_dump(connectors_file(port, devices, nodes, publish_ms))
        await asyncio.to_thread(path.write_text, text)
        i = 0
        while not stop.is_set():
            i += 1
            stamp = datetime.now(UTC)
            for node_id in ids:
                value = ua.DataValue(
                    ua.Variant(float(i), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                await server.write_attribute_value(node_id, value)
            await asyncio.sleep(0)  # let the subscriptions publish


def main() -> int:
    port, devices, nodes = (int(a) for a in sys.argv[1:4])
    path, publish_ms = Path(sys.argv[4]), float(sys.argv[5])
    asyncio.run(serve(port, devices, nodes, path, publish_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
