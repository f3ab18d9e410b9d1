"""EDGE_CONNECTORS_FILE: errors name the field, secrets come from references, and the committed
JSON Schema is the one the model generates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_gateway.connectors.config import (
    ConnectorsConfigError,
    ModbusConnector,
    OpcUaConnector,
    OpcUaDevice,
    load_connectors_file,
    parse_connectors,
    resolve_secret,
)
from edge_gateway.connectors.schema import SCHEMA_PATH, render

ROOT = Path(__file__).resolve().parents[2]


def modbus(**over: Any) -> dict[str, Any]:
    registers = [{"metric": f"m{i}", "address": i} for i in range(4)]
    return {
        "name": "plc",
        "kind": "modbus",
        "endpoint": "tcp://10.0.0.5",
        "devices": [{"device_id": "press-01", "registers": registers}],
        **over,
    }


def opcua(**over: Any) -> dict[str, Any]:
    nodes = [{"metric": "temp_c", "node_id": "ns=2;i=2"}]
    return {
        "name": "cnc",
        "kind": "opcua",
        "endpoint": "opc.tcp://cnc:4840",
        "devices": [{"device_id": "cnc-01", "nodes": nodes}],
        **over,
    }


def error_of(data: Any) -> str:
    with pytest.raises(ConnectorsConfigError) as info:
        parse_connectors(data)
    return str(info.value)


def test_a_good_file_parses_with_defaults() -> None:
    config = parse_connectors({"connectors": [modbus(), opcua()]})
    first, second = config.connectors
    assert isinstance(first, ModbusConnector)
    assert first.host_port == ("10.0.0.5", 502)
    assert first.devices[0].poll_interval_s == 1.0
    assert isinstance(second, OpcUaConnector)
    assert second.security.policy == "None"
    assert parse_connectors(None).connectors == []


def test_errors_name_the_field_by_path() -> None:
    bad = modbus()
    bad["devices"][0]["registers"][3]["type"] = "int8"
    message = error_of({"connectors": [opcua(), bad]})
    assert message.startswith("connectors[1].devices[0].registers[3].type: Input should be")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": "profibus"}, "connectors[0]: Input tag 'profibus'"),
        ({"endpoint": "http://x"}, "connectors[0].endpoint:"),
        ({"name": "has space"}, "connectors[0].name:"),
        ({"surprise": 1}, "connectors[0].surprise: Extra inputs are not permitted"),
    ],
)
def test_connector_level_errors(change: dict[str, Any], expected: str) -> None:
    assert error_of({"connectors": [modbus(**change)]}).startswith(expected)


def test_metric_names_must_be_ours() -> None:
    bad = opcua()
    bad["devices"][0]["nodes"][0]["metric"] = "Motor Temp"
    assert error_of({"connectors": [bad]}).startswith("connectors[0].devices[0].nodes[0].metric:")


def test_a_node_needs_exactly_one_address() -> None:
    bad = opcua()
    bad["devices"][0]["nodes"][0]["browse_path"] = "2:Cnc/2:Temp"
    assert "exactly one of node_id or browse_path" in error_of({"connectors": [bad]})


def test_bits_take_no_type_and_duplicates_are_refused() -> None:
    bad = modbus()
    bad["devices"][0]["registers"][0] |= {"table": "coil", "type": "float32"}
    assert "is a boolean" in error_of({"connectors": [bad]})
    assert "duplicate connector names" in error_of({"connectors": [modbus(), modbus()]})
    other = modbus(name="plc2")
    assert "duplicate device_id" in error_of({"connectors": [modbus(), other]})


def test_security_must_be_consistent() -> None:
    message = error_of({"connectors": [opcua(security={"policy": "Basic256Sha256"})]})
    assert message.startswith("connectors[0].security:")
    message = error_of({"connectors": [opcua(auth={"kind": "username", "username": "u"})]})
    assert "needs username and password" in message


def test_passwords_come_from_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    config = parse_connectors(
        {
            "connectors": [
                opcua(
                    auth={
                        "kind": "username",
                        "username": "op",
                        "password": {"file": str(secret_file)},
                    }
                )
            ]
        }
    )
    connector = config.connectors[0]
    assert isinstance(connector, OpcUaConnector)
    assert connector.auth.password is not None
    assert resolve_secret(connector.auth.password, "x").get_secret_value() == "from-file"
    path = tmp_path / "c.yaml"
    path.write_text(
        "connectors:\n- name: cnc\n  kind: opcua\n  endpoint: opc.tcp://h:4840\n"
        "  auth: {kind: username, username: op, password: {env: NO_SUCH_VAR_X}}\n"
        "  devices: [{device_id: d, nodes: [{metric: a, node_id: 'i=1'}]}]\n"
    )
    monkeypatch.delenv("NO_SUCH_VAR_X", raising=False)
    with pytest.raises(ConnectorsConfigError, match=r"auth.password: environment variable"):
        load_connectors_file(path)
    monkeypatch.setenv("NO_SUCH_VAR_X", "pw")
    assert load_connectors_file(path).connectors[0].name == "cnc"


def test_unreadable_and_non_yaml_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConnectorsConfigError, match=r"nope\.yaml"):
        load_connectors_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectors: [\n")
    with pytest.raises(ConnectorsConfigError, match="not YAML"):
        load_connectors_file(bad)


def test_devices_and_values_take_metadata_for_the_hub() -> None:
    nodes = [
        {
            "metric": "temp_c",
            "node_id": "ns=2;i=2",
            "unit": "°C",
            "display_name": "Spindle temperature",
            "normal": [10, 60],
            "engineering": [-20, 150],
            "description": "bearing",
        }
    ]
    device = {"device_id": "cnc-01", "display_name": "CNC 1", "area": "Machining", "nodes": nodes}
    config = parse_connectors({"connectors": [opcua(devices=[device])]})
    parsed = config.connectors[0].devices[0]
    assert (parsed.display_name, parsed.area, parsed.line) == ("CNC 1", "Machining", None)
    assert isinstance(parsed, OpcUaDevice)
    assert parsed.nodes[0].engineering == [-20.0, 150.0]


@pytest.mark.parametrize(
    ("point", "device", "expected"),
    [
        (
            {"normal": [5, 1]},
            {},
            "connectors[0].devices[0].registers[0]: Value error, normal: min 5 is greater than "
            "max 1",
        ),
        ({"engineering": [1]}, {}, "connectors[0].devices[0].registers[0].engineering: List"),
        ({"unit": "u" * 33}, {}, "connectors[0].devices[0].registers[0].unit: String should"),
        ({}, {"area": "x" * 121}, "connectors[0].devices[0].area: String should have at most"),
        ({}, {"line": "a\nb"}, "connectors[0].devices[0].line: String should match"),
    ],
)
def test_bad_metadata_names_its_field(
    point: dict[str, Any], device: dict[str, Any], expected: str
) -> None:
    registers = [{"metric": "m0", "address": 0, **point}]
    bad = modbus(devices=[{"device_id": "press-01", "registers": registers, **device}])
    assert expected in error_of({"connectors": [bad]})


def test_the_committed_schema_is_the_generated_one() -> None:
    assert (ROOT / SCHEMA_PATH).read_text() == render()
