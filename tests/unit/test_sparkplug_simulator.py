"""The simulated Sparkplug edge node's payloads, read by the gateway's own host."""

from __future__ import annotations

from edge_gateway.simulators.catalog import metric_specs
from edge_gateway.simulators.fleet import FleetSpec, build_fleet
from edge_gateway.simulators.sparkplug_node import NodeEncoder, tag_name
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.host import Reading, SparkplugHost, Status

T0 = 1_795_000_000_000


def test_tag_names_normalise_back_to_the_catalog_names() -> None:
    assert tag_name("spindle_temp_c") == "Spindle Temp C"


def test_births_and_data_by_alias_give_the_catalog_metrics_and_units() -> None:
    devices = build_fleet(FleetSpec(site="s1", anomaly_probability=0.0))
    enc = NodeEncoder("s1", "simulator", devices, bd_seq=7)
    host = SparkplugHost()
    out = host.receive(enc.topic("NBIRTH"), enc.nbirth(T0), T0)
    first = {d.device_id: d.next_payload(T0) for d in devices}
    for device in devices:
        payload = first[device.device_id]
        assert payload is not None
        out += host.receive(
            enc.topic("DBIRTH", device.device_id),
            enc.dbirth(device, payload["metrics"], T0),
            T0,
        )
    assert sorted(s.device_id for s in out if isinstance(s, Status)) == sorted(
        ["simulator", *(f"simulator.{d.device_id}" for d in devices)]
    )
    data = []
    for device in devices:
        payload = device.next_payload(T0 + 1000)
        assert payload is not None
        raw = enc.ddata(device, payload["metrics"], T0 + 1000)
        assert all(not m.name for m in pb.Payload.FromString(raw).metrics)  # alias only
        data += host.receive(enc.topic("DDATA", device.device_id), raw, T0 + 1000)
        (reading,) = [r for r in data if isinstance(r, Reading) and r.ts == T0 + 1000][-1:]
        assert reading.device_id == f"simulator.{device.device_id}"
        assert reading.metrics == payload["metrics"]
    mapping = host.device_metrics()
    cnc = next(d for d in devices if d.device_type == "cnc_spindle")
    info = mapping[("s1", f"simulator.{cnc.device_id}")]
    specs = metric_specs("cnc_spindle")
    assert set(info) == set(specs)
    for name, spec in specs.items():
        assert info[name].unit == spec.unit
        assert info[name].original == tag_name(name)
    assert host.counts["seq_out_of_order"] == 0


def test_seq_wraps_and_rebirth_restarts_it() -> None:
    devices = build_fleet(FleetSpec(site="s1", types=("conveyor",)))
    enc = NodeEncoder("s1", "n", devices)
    assert pb.Payload.FromString(enc.nbirth(T0)).seq == 0
    seqs = [pb.Payload.FromString(enc.ddeath(T0)).seq for _ in range(300)]
    assert seqs[254:258] == [255, 0, 1, 2]
    assert pb.Payload.FromString(enc.nbirth(T0)).seq == 0
