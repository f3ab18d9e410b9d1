"""The simulated OPC UA and Modbus layouts, and the connectors file that reads them back."""

from __future__ import annotations

import pytest

from edge_gateway.cli import build_parser
from edge_gateway.connectors.config import (
    ModbusConnector,
    OpcUaConnector,
    parse_connectors,
)
from edge_gateway.simulators.catalog import ALL_TYPES, METRICS
from edge_gateway.simulators.industrial_map import Protocol, connectors_file, modbus_slots

DEVICES = [("cnc-01", "cnc_spindle"), ("press-01", "hydraulic_press")]


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_the_file_is_valid_and_names_every_metric(protocol: Protocol) -> None:
    config = parse_connectors(connectors_file(protocol, "10.1.2.3", 4840, DEVICES, 2.0))
    (connector,) = config.connectors
    assert connector.kind == protocol
    if isinstance(connector, ModbusConnector):
        seen = [(d.device_id, d.type, {r.metric for r in d.registers}) for d in connector.devices]
    else:
        seen = [(d.device_id, d.type, {n.metric for n in d.nodes}) for d in connector.devices]
    assert seen == [(i, t, {m.name for m in METRICS[t]}) for i, t in DEVICES]
    if isinstance(connector, ModbusConnector):
        assert [d.unit_id for d in connector.devices] == [1, 2]
        assert connector.devices[0].poll_interval_s == 0.5
    else:
        assert isinstance(connector, OpcUaConnector)
        assert connector.devices[0].nodes[0].node_id == "ns=2;s=cnc-01.running"


@pytest.mark.parametrize("device_type", ALL_TYPES)
def test_modbus_slots_do_not_overlap(device_type: str) -> None:
    slots = modbus_slots(device_type)
    registers = [a for s in slots if s.table == "holding" for a in (s.address, s.address + 1)]
    coils = [s.address for s in slots if s.table == "coil"]
    assert len(registers) == len(set(registers))
    assert len(coils) == len(set(coils))
    flags = {m.name for m in METRICS[device_type] if m.kind == "flag"}
    assert {s.metric for s in slots if s.table == "coil"} == flags


def test_simulate_help_describes_the_protocols(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "--protocol {mqtt,sparkplug,opcua,modbus}" in text
    assert "EDGE_CONNECTORS_FILE" in text
    args = build_parser().parse_args(["simulate", "--protocol", "modbus", "--listen", "h:502"])
    assert args.listen == ("h", 502)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--listen", "nope"])
