"""`iot-edge`: run the gateway, run simulators against any broker, show a gateway's status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, TextIO

from edge_gateway.broker import add_passwd_parser
from edge_gateway.settings import EdgeSettings
from edge_gateway.simulators.cli import add_parser as add_simulate_parser
from edge_gateway.status_view import render_status, summary_line
from iot_common import settings_cli
from iot_common.logs import configure_logging

if TYPE_CHECKING:
    from edge_gateway.connectors.config import ConnectorsFile
    from edge_gateway.mqtt_security import MqttSecurity


def load_settings() -> EdgeSettings:
    return settings_cli.load_settings(EdgeSettings, "EDGE_")


def print_settings(settings: EdgeSettings, stream: TextIO | None = None) -> None:
    settings_cli.print_settings(settings.describe(), "EDGE_", stream)


# -- run ---------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from edge_gateway.mqtt_security import load_mqtt_security
    from edge_gateway.mqtt_tls import SettingError

    settings = load_settings()
    configure_logging(settings.log_level, gateway=settings.gateway_id)
    print_settings(settings)
    try:
        # Certificates, keys, password and ACL files: refused here, before anything listens.
        security = load_mqtt_security(settings)
    except SettingError as exc:
        print(exc, file=sys.stderr)
        return 2
    connectors = _load_connectors(settings)
    if connectors is None:
        return 2
    return asyncio.run(_serve(settings, security, connectors, summary=args.summary))


def _load_connectors(settings: EdgeSettings) -> ConnectorsFile | None:
    """The connectors file, validated whole; None (after one line naming the field) if bad."""
    from edge_gateway.connectors.config import (
        SETTING,
        ConnectorsConfigError,
        ConnectorsFile,
        load_connectors_file,
    )

    if settings.connectors_file is None:
        return ConnectorsFile()
    try:
        return load_connectors_file(settings.connectors_file)
    except ConnectorsConfigError as exc:
        print(f"invalid setting {SETTING}: {exc}", file=sys.stderr)
        return None


async def _serve(
    settings: EdgeSettings, security: MqttSecurity, connectors: ConnectorsFile, *, summary: bool
) -> int:
    from edge_gateway.app import EdgeGateway  # heavy imports only for `run`

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = EdgeGateway(settings, security=security, connectors=connectors)
    try:
        await gateway.start()
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        await gateway.stop()
        return 1
    tty = sys.stdout.isatty()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0 if tty else 5.0)
        if summary:
            line = summary_line(gateway.status().to_json(), gateway.simulator_stats.published)
            print(("\r" + line + "\033[K") if tty else line, end="" if tty else "\n", flush=True)
    if summary and tty:
        print()
    await gateway.stop()
    return 0


def _add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the gateway (broker, bridge, buffer, forwarder, status server)",
        description="Run the edge gateway. All settings come from EDGE_* environment variables "
        "(see the README); the effective settings are printed at start. Stops cleanly on "
        "SIGTERM or Ctrl-C: in-flight batches are settled and the buffer is closed.",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="print a live one-line summary (received, forwarded, buffered)",
    )
    p.set_defaults(func=_run)


# -- status ------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    url = args.url or f"http://127.0.0.1:{load_settings().http_port}"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/status", timeout=5) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, OSError) as exc:
        print(f"no gateway answering at {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else render_status(body))
    return 0


def _add_status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show a running gateway's buffer, rates, drops and Kafka state",
        description="Ask a running gateway for its status (GET /api/v1/status) and print it.",
    )
    p.add_argument("--url", help="gateway status URL (default http://127.0.0.1:$EDGE_HTTP_PORT)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iot-edge",
        description="Edge gateway: MQTT in, validated and buffered durably, forwarded to Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_parser(sub)
    add_simulate_parser(sub)
    _add_status_parser(sub)
    add_passwd_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
