"""Sparkplug births -> device metadata (edge_gateway.sparkplug.metadata and the host's
`Metadata` outputs): original names, the PropertySet's unit, engineering range and description,
name collisions, and bad properties that cost the metric its metadata, never the readings."""

from __future__ import annotations

from typing import Any

import pytest

from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.host import Metadata, Notice, Output, Reading, SparkplugHost
from edge_gateway.sparkplug.metadata import birth_metadata, unit_of

G, N = "plant1", "press7"
T0 = 1_764_000_000_000
NOW = T0 + 5


def prop(value: Any, datatype: int | None = None) -> pb.Payload.PropertyValue:
    if isinstance(value, str):
        return pb.Payload.PropertyValue(type=datatype or pb.String, string_value=value)
    if isinstance(value, bool):
        return pb.Payload.PropertyValue(type=datatype or pb.Boolean, boolean_value=value)
    if isinstance(value, float):
        return pb.Payload.PropertyValue(type=datatype or pb.Double, double_value=value)
    return pb.Payload.PropertyValue(type=datatype or pb.Int64, long_value=value)


def metric(
    name: str, datatype: int = pb.Double, alias: int | None = None, **props: Any
) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "datatype": datatype}
    if datatype == pb.Boolean:
        m["boolean_value"] = True
    elif datatype == pb.String:
        m["string_value"] = "x"
    elif datatype in (pb.Float, pb.Double):
        m["double_value" if datatype == pb.Double else "float_value"] = 1.0
    else:
        m["int_value"] = 1
    if alias is not None:
        m["alias"] = alias
    if props:
        keys = list(props)
        values = [v if isinstance(v, pb.Payload.PropertyValue) else prop(v) for v in props.values()]
        m["properties"] = pb.Payload.PropertySet(keys=keys, values=values)
    return m


def birth(seq: int, *metrics: dict[str, Any]) -> bytes:
    p = pb.Payload(timestamp=T0, seq=seq)
    for m in metrics:
        p.metrics.add(**m)
    return bytes(p.SerializeToString())


def bdseq() -> dict[str, Any]:
    return {"name": "bdSeq", "datatype": pb.Int64, "long_value": 0}


def metadata(out: list[Output]) -> dict[str, Metadata]:
    return {o.device_id: o for o in out if isinstance(o, Metadata)}


def test_births_report_original_names_units_ranges_and_descriptions() -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        birth(
            0,
            bdseq(),
            metric(
                "Hydraulic/Pressure",
                alias=1,
                engUnit="bar",
                engLow=0.0,
                engHigh=400.0,
                Documentation="main cylinder",
            ),
            metric("Running", pb.Boolean),
            metric("Node Control/Rebirth", pb.Boolean),
            metric("Label", pb.String, engUnit="-"),
        ),
        NOW,
    )
    out += host.receive(
        f"spBv1.0/{G}/DBIRTH/{N}/motor1",
        birth(
            1,
            # a signed engLow travels as two's complement in the unsigned field (spec 6.4.16)
            metric(
                "Motor 1/Temperature",
                pb.Float,
                units="°C",
                engLow=prop(-20 & 0xFFFFFFFF, pb.Int32),
                engHigh=prop(150, pb.Int32),
            ),
            metric("Speed RPM", pb.Int32, description="shaft speed"),
        ),
        NOW,
    )
    found = metadata(out)
    node, device = found[N], found[f"{N}.motor1"]
    assert (node.site, node.ts) == (G, NOW)  # the gateway's clock: the hub keeps the newest
    assert node.metrics == {
        "hydraulic_pressure": {
            "source_name": "Hydraulic/Pressure",
            "unit": "bar",
            "engineering": [0.0, 400.0],
            "description": "main cylinder",
        },
        "running": {"source_name": "Running"},
    }  # no bdSeq, Node Control/* or strings
    assert device.metrics == {
        "motor_1_temperature": {
            "source_name": "Motor 1/Temperature",
            "unit": "°C",
            "engineering": [-20.0, 150.0],
        },
        "speed_rpm": {"source_name": "Speed RPM", "description": "shaft speed"},
    }
    # the metadata comes before the birth's readings
    kinds = [type(o).__name__ for o in out if isinstance(o, Metadata | Reading)]
    assert kinds == ["Metadata", "Reading", "Metadata", "Reading"]


def test_a_rebirth_reports_again_and_data_does_not() -> None:
    host = SparkplugHost()
    nbirth = birth(0, bdseq(), metric("Level", alias=1, engUnit="m"))
    assert metadata(host.receive(f"spBv1.0/{G}/NBIRTH/{N}", nbirth, NOW))[N].metrics
    data = pb.Payload(timestamp=T0, seq=1)
    data.metrics.add(alias=1, datatype=pb.Double, double_value=2.0)
    assert metadata(host.receive(f"spBv1.0/{G}/NDATA/{N}", data.SerializeToString(), NOW)) == {}
    again = birth(0, bdseq(), metric("Level", alias=1, engUnit="cm"))
    later = metadata(host.receive(f"spBv1.0/{G}/NBIRTH/{N}", again, NOW + 1000))[N]
    assert (later.ts, later.metrics["level"]["unit"]) == (NOW + 1000, "cm")


def test_a_node_with_control_metrics_only_reports_nothing() -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        birth(0, bdseq(), metric("Node Control/Rebirth", pb.Boolean)),
        NOW,
    )
    assert metadata(out) == {}


def test_colliding_names_keep_their_own_original_and_unit() -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        birth(0, bdseq(), metric("Temp A", engUnit="K"), metric("Temp/A", engUnit="degC")),
        NOW,
    )
    assert metadata(out)[N].metrics == {
        "temp_a": {"source_name": "Temp A", "unit": "K"},
        "temp_a_2": {"source_name": "Temp/A", "unit": "degC"},
    }
    (reading,) = [o for o in out if isinstance(o, Reading)]
    assert set(reading.metrics) == {"temp_a", "temp_a_2"}


def test_property_keys_match_in_any_case_and_the_first_alias_wins() -> None:
    (m,) = [metric("x", ENGUNIT="psi", EngLow=1.0, ENGHIGH=2.0, unit="ignored")]
    found = birth_metadata([pb.Payload.Metric(**m)], {"x": "x"}, is_control=lambda _: False).metrics
    assert found == {"x": {"source_name": "x", "unit": "psi", "engineering": [1.0, 2.0]}}


@pytest.mark.parametrize(
    ("props", "reason", "detail"),
    [
        ({"engLow": 10.0, "engHigh": 1.0}, "metadata_bad_range", "engLow 10 is greater"),
        ({"engLow": 0.0}, "metadata_bad_range", "engHigh missing"),
        ({"engHigh": 5.0}, "metadata_bad_range", "engLow missing"),
        ({"engUnit": 3.5}, "metadata_bad_property", "engUnit: a string expected, got double"),
        ({"engLow": "low", "engHigh": 1.0}, "metadata_bad_property", "englow: a number"),
        ({"engLow": True, "engHigh": 1.0}, "metadata_bad_property", "got boolean"),
        ({"engLow": float("nan"), "engHigh": 1.0}, "metadata_bad_property", "not a finite"),
        ({"engUnit": "u" * 40}, "metadata_bad_property", "unit: String should have at most 32"),
        ({"engLow": 0.0, "engHigh": 1e20}, "metadata_bad_property", "engineering.1"),
    ],
)
def test_bad_properties_cost_the_metric_its_metadata_never_the_readings(
    props: dict[str, Any], reason: str, detail: str
) -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        birth(0, bdseq(), metric("Bad", alias=1, **props), metric("Good", alias=2, engUnit="V")),
        NOW,
    )
    assert metadata(out)[N].metrics == {"good": {"source_name": "Good", "unit": "V"}}
    (reading,) = [o for o in out if isinstance(o, Reading)]
    assert reading.metrics == {"bad": 1.0, "good": 1.0}
    assert host.counts[reason] == 1
    (notice,) = [o for o in out if isinstance(o, Notice) and o.reason == reason]
    assert notice.device_id == N
    assert notice.detail.startswith("Bad: ")
    assert detail.lower() in notice.detail.lower()


def test_a_birth_whose_every_metric_is_bad_still_reports_an_empty_set() -> None:
    host = SparkplugHost()
    out = host.receive(f"spBv1.0/{G}/NBIRTH/{N}", birth(0, bdseq(), metric("Bad", engLow=3.0)), NOW)
    assert metadata(out)[N].metrics == {}


def test_more_metrics_than_a_report_holds_keeps_the_first_by_name() -> None:
    metrics = [pb.Payload.Metric(**metric(f"m{i:03d}")) for i in range(501)]
    found = birth_metadata(metrics, {m.name: m.name for m in metrics}, is_control=lambda _: False)
    assert len(found.metrics) == 500
    assert "m500" not in found.metrics
    assert [p.reason for p in found.problems] == ["metadata_too_many_metrics"]


def test_unit_of_ignores_a_unit_that_is_not_a_string() -> None:
    assert unit_of(pb.Payload.Metric(**metric("x", engUnit=1.0))) is None
    assert unit_of(pb.Payload.Metric(**metric("x", Units="A"))) == "A"
