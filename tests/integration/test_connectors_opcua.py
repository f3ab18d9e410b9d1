"""The OPC UA connector against a real asyncua server started by the test: subscription values
arrive with their source timestamps, one reading per notification; a missing node is counted and
the others still run; the server stopped and restarted -> values resume; user and password."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_gateway.connectors.config import OpcUaConnector
from edge_gateway.connectors.opcua import OpcUaClientConnector
from edge_gateway.connectors.sink import ReadingSink
from edge_gateway.intake import Inbound
from protocol.device_metadata import DeviceMetadataReport
from tests.support.opcua_server import OpcUaTestServer, make_certificate
from tests.support.process import free_port
from tests.support.waiting import async_wait_until


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Inbound] = []
        self.reports: list[DeviceMetadataReport] = []  # iot.device-metadata records

    def put_nowait(self, message: Inbound) -> None:
        if message.metadata is not None:
            self.reports.append(DeviceMetadataReport.model_validate_json(message.metadata.value))
        else:
            self.messages.append(message)

    def metrics(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload)["metrics"] for m in self.messages]


def config(endpoint: str, ns: int, **over: Any) -> OpcUaConnector:
    return OpcUaConnector.model_validate(
        {
            "name": "press-plc",
            "kind": "opcua",
            "endpoint": endpoint,
            "publishing_interval_ms": 50,
            "reconnect_max_s": 0.5,
            "timeout_s": 2,
            "devices": [
                {
                    "device_id": "press-01",
                    "type": "hydraulic_press",
                    "nodes": [
                        {
                            "metric": "pressure_bar",
                            "node_id": f"ns={ns};s=Press1.Pressure",
                            "sampling_interval_ms": 20,
                        },
                        {
                            "metric": "temp_c",
                            "browse_path": f"{ns}:Press1/{ns}:Temperature",
                            "deadband": {"type": "absolute", "value": 0.5},
                        },
                        {"metric": "running", "node_id": f"ns={ns};s=Press1.Running"},
                        {"metric": "ghost", "node_id": f"ns={ns};s=Press1.NoSuchThing"},
                        {"metric": "ghost_path", "browse_path": f"{ns}:Press1/{ns}:Nothing"},
                    ],
                }
            ],
            **over,
        }
    )


@pytest.fixture
async def server() -> AsyncIterator[OpcUaTestServer]:
    srv = OpcUaTestServer(free_port())
    await srv.start()
    yield srv
    await srv.stop()


@contextlib.asynccontextmanager
async def running(*connectors: OpcUaClientConnector) -> AsyncIterator[None]:
    """The connectors run for the block, and are stopped and awaited after it."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(connector.run(stop)) for connector in connectors]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            await asyncio.wait_for(task, 15)


async def certificates(tmp_path: Path) -> tuple[tuple[Path, Path], dict[str, str]]:
    """The server's (certificate, key), and the client's Basic256Sha256 SignAndEncrypt
    security settings, with a certificate of its own that trusts the server's."""
    server_key, server_cert = tmp_path / "server-key.pem", tmp_path / "server.der"
    client_key, client_cert = tmp_path / "client-key.pem", tmp_path / "client.der"
    await make_certificate(server_key, server_cert, "urn:iot-monitoring:test-server", server=True)
    await make_certificate(client_key, client_cert, "urn:freeopcua:client", server=False)
    security = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "certificate": str(client_cert),
        "private_key": str(client_key),
        "server_certificate": str(server_cert),
    }
    return (server_cert, server_key), security


async def until(condition: Any, what: str, timeout: float = 20) -> None:
    async def check() -> bool:
        return bool(condition())

    await async_wait_until(check, timeout, what)


async def test_subscription_values_missing_nodes_and_reconnect(server: OpcUaTestServer) -> None:
    inbox = Inbox()
    connector = OpcUaClientConnector(config(server.endpoint, server.ns), ReadingSink(inbox, "s1"))
    async with running(connector):
        # The initial values of the three real nodes (the server may notify them together or
        # apart: their sampling intervals differ).
        def initial() -> set[str]:
            return {name for metrics in inbox.metrics() for name in metrics}

        await until(lambda: initial() == {"pressure_bar", "temp_c", "running"}, "initial values")
        first = json.loads(inbox.messages[0].payload)
        assert inbox.messages[0].topic == "plant/s1/press-01/telemetry"
        assert first["type"] == "hydraulic_press"
        assert {"pressure_bar": 10.0, "temp_c": 20.0, "running": True}.items() <= {
            k: v for metrics in inbox.metrics() for k, v in metrics.items()
        }.items()
        assert connector.health.errors["bad_node"] == 2
        assert connector.health.connected

        # A change arrives with the source timestamp the server gave it.
        await server.write("Pressure", 42.5)
        await until(lambda: {"pressure_bar": 42.5} in inbox.metrics(), "the new pressure")
        changed = next(
            m for m in inbox.messages if json.loads(m.payload)["metrics"] == {"pressure_bar": 42.5}
        )
        source = await server.variables["Pressure"].read_data_value()
        assert json.loads(changed.payload)["ts"] == int(source.SourceTimestamp.timestamp() * 1000)

        # The deadband: a change of 0.2 is not reported, one of 5 is.
        await server.write("Temperature", 20.2)
        await server.write("Temperature", 25.0)
        await until(lambda: {"temp_c": 25.0} in inbox.metrics(), "the temperature change")
        assert {"temp_c": 20.2} not in inbox.metrics()

        # The server stops and comes back: the connector reconnects and values resume.
        await server.stop()
        await until(lambda: not connector.health.connected, "the connector to see it gone")
        await server.start()
        await until(lambda: connector.health.connected, "the reconnect", timeout=30)
        await server.write("Pressure", 77.0)
        await until(lambda: {"pressure_bar": 77.0} in inbox.metrics(), "values after restart")
        assert connector.health.errors["connection_lost"] >= 1


async def test_units_and_ranges_the_server_defines_are_reported_under_the_files(
    server: OpcUaTestServer,
) -> None:
    cfg = config(server.endpoint, server.ns).model_dump(mode="json")
    nodes = cfg["devices"][0]["nodes"]
    nodes[1]["unit"] = "°C"  # the file's unit wins over the server's K
    inbox = Inbox()
    connector = OpcUaClientConnector(
        OpcUaConnector.model_validate(cfg), ReadingSink(inbox, "s1", gateway_id="gw-1")
    )
    async with running(connector):
        await until(lambda: inbox.reports, "the discovered metadata")
        (report,) = inbox.reports
        assert (report.device_id, report.source, report.type) == (
            "press-01",
            "opcua",
            "hydraulic_press",
        )
        metrics = report.document()["metrics"]
        assert isinstance(metrics, dict)
        assert metrics["pressure_bar"] == {"unit": "bar", "engineering": [0.0, 400.0]}
        assert metrics["temp_c"] == {"unit": "°C"}
        assert metrics["running"] == {}  # a node without the properties
        assert metrics["ghost"] == {}  # listed from the file, though the server lacks it


async def test_username_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    srv = OpcUaTestServer(free_port(), users={"operator": "s3cret"})
    await srv.start()
    monkeypatch.setenv("TEST_OPCUA_PASSWORD", "s3cret")
    monkeypatch.setenv("TEST_OPCUA_WRONG", "wrong")
    try:
        auth = {
            "kind": "username",
            "username": "operator",
            "password": {"env": "TEST_OPCUA_PASSWORD"},
        }
        good_inbox, bad_inbox = Inbox(), Inbox()
        good = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, auth=auth), ReadingSink(good_inbox, "s1")
        )
        wrong = {**auth, "password": {"env": "TEST_OPCUA_WRONG"}}
        bad = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, auth=wrong, name="other"), ReadingSink(bad_inbox, "s1")
        )
        async with running(good, bad):
            await until(lambda: good_inbox.messages, "values with the right password")
            await until(lambda: bad.health.errors["connect_failed"] >= 1, "the refusal")
            assert not bad_inbox.messages
            assert "s3cret" not in (good.health.last_error or "")
            assert "wrong" not in (bad.health.last_error or "")
    finally:
        await srv.stop()


async def test_basic256sha256_sign_and_encrypt(tmp_path: Path) -> None:
    server_identity, security = await certificates(tmp_path)
    srv = OpcUaTestServer(free_port(), secure=server_identity)
    await srv.start()
    try:
        inbox = Inbox()
        connector = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, security=security), ReadingSink(inbox, "s1")
        )
        # Without security, the same server refuses the connection: counted, never fatal.
        plain_inbox = Inbox()
        plain = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, name="plain"), ReadingSink(plain_inbox, "s1")
        )
        async with running(connector, plain):
            await until(lambda: inbox.messages, "values over Basic256Sha256 SignAndEncrypt")
            await srv.write("Pressure", 55.5)
            await until(lambda: {"pressure_bar": 55.5} in inbox.metrics(), "a change, encrypted")
            await until(lambda: plain.health.errors["connect_failed"] >= 1, "the refusal")
            assert not plain_inbox.messages
    finally:
        await srv.stop()


async def test_user_certificate_authentication(tmp_path: Path) -> None:
    server_identity, security = await certificates(tmp_path)
    client_cert = Path(security["certificate"])
    srv = OpcUaTestServer(free_port(), secure=server_identity, user_certificates=[client_cert])
    await srv.start()
    try:
        # The channel's own client certificate, also presented as the user's identity.
        auth = {"kind": "certificate", "certificate": security["certificate"],
                "private_key": security["private_key"]}  # fmt: skip
        inbox = Inbox()
        connector = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, security=security, auth=auth), ReadingSink(inbox, "s1")
        )
        # The same secure channel without the user certificate: an anonymous user, refused.
        anonymous = OpcUaClientConnector(
            config(srv.endpoint, srv.ns, security=security, name="anon"), ReadingSink(Inbox(), "s1")
        )
        async with running(connector, anonymous):
            await until(lambda: inbox.messages, "values for a certificate user")
            assert connector.health.connected
            await until(lambda: anonymous.health.errors["connect_failed"] >= 1, "the refusal")
            assert not anonymous.health.connected
    finally:
        await srv.stop()
