"""The Sparkplug B host state machine against the specification's rules (no MQTT)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_gateway.sparkplug import names
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb
from edge_gateway.sparkplug.host import (
    Command,
    MetricInfo,
    Notice,
    Output,
    Reading,
    Refused,
    SparkplugHost,
    Status,
    state_payload,
)

G, N = "plant1", "press7"
T0 = 1_764_000_000_000


def payload(seq: int | None, *metrics: dict[str, Any], ts: int = T0) -> bytes:
    p = pb.Payload(timestamp=ts)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        p.metrics.add(**m)
    return bytes(p.SerializeToString())


def dbl(
    name: str | None = None, value: float = 1.0, alias: int | None = None, **kw: Any
) -> dict[str, Any]:
    m: dict[str, Any] = {"datatype": pb.Double, "double_value": value, **kw}
    if name is not None:
        m["name"] = name
    if alias is not None:
        m["alias"] = alias
    return m


def bdseq(n: int) -> dict[str, Any]:
    return {"name": "bdSeq", "datatype": pb.Int64, "long_value": n}


def readings(out: list[Output]) -> list[Reading]:
    return [o for o in out if isinstance(o, Reading)]


def statuses(out: list[Output]) -> list[tuple[str, str]]:
    return [(o.device_id, o.state) for o in out if isinstance(o, Status)]


def commands(out: list[Output]) -> list[Command]:
    return [o for o in out if isinstance(o, Command)]


def born(host: SparkplugHost, bd: int = 0) -> list[Output]:
    """NBIRTH (seq 0) with Temperature alias 1, Running alias 2; DBIRTH (seq 1) of motor1."""
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        payload(
            0,
            bdseq(bd),
            dbl(
                "Motor 1/Temperature",
                20.0,
                alias=1,
                properties=pb.Payload.PropertySet(
                    keys=["engUnit"],
                    values=[pb.Payload.PropertyValue(type=pb.String, string_value="degC")],
                ),
            ),
            {"name": "Running", "alias": 2, "datatype": pb.Boolean, "boolean_value": True},
            {
                "name": "Node Control/Rebirth",
                "alias": 3,
                "datatype": pb.Boolean,
                "boolean_value": False,
            },
        ),
        T0,
    )
    out += host.receive(
        f"spBv1.0/{G}/DBIRTH/{N}/motor1", payload(1, dbl("Speed", 1500.0, alias=10)), T0
    )
    return out


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Motor 1/Temperature", "motor_1_temperature"),
        ("  Flow--Rate (l/min) ", "flow_rate_l_min"),
        ("3Phase/Voltage", "m_3phase_voltage"),
        ("???", "metric"),
        ("Ä", "metric"),
        ("x" * 100, "x" * 64),
    ],
)
def test_names_are_normalised(original: str, expected: str) -> None:
    assert names.normalise(original) == expected


def test_colliding_names_are_told_apart_the_same_way_in_any_order() -> None:
    first = names.normalise_all(["Temp A", "temp_a", "Temp/A"])
    second = names.normalise_all(["Temp/A", "temp_a", "Temp A"])
    assert first == second
    assert sorted(first.values()) == ["temp_a", "temp_a_2", "temp_a_3"]
    assert first["Temp A"] == "temp_a"  # the first original in sorted order keeps the base
    long = names.normalise_all(["y" * 70, "y" * 80])
    assert set(long.values()) == {"y" * 64, "y" * 62 + "_2"}


# -- births, data, deaths ----------------------------------------------------------------


def test_births_make_the_node_and_device_online_with_their_values() -> None:
    host = SparkplugHost()
    out = born(host)
    assert statuses(out) == [(N, "online"), (f"{N}.motor1", "online")]
    node, device = readings(out)
    assert (node.site, node.device_id, node.ts) == (G, N, T0)
    # bdSeq and Node Control/* are the protocol's, not the machine's
    assert node.metrics == {"motor_1_temperature": 20.0, "running": True}
    assert (device.device_id, device.metrics) == (f"{N}.motor1", {"speed": 1500.0})
    assert json.loads(node.payload()) == {"ts": T0, "metrics": node.metrics}


def test_data_is_resolved_by_alias_or_name() -> None:
    host = SparkplugHost()
    born(host)
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 21.5, alias=1)), T0 + 1)
    out += host.receive(f"spBv1.0/{G}/DDATA/{N}/motor1", payload(3, dbl("Speed", 1490.0)), T0 + 2)
    assert [(r.device_id, r.metrics) for r in readings(out)] == [
        (N, {"motor_1_temperature": 21.5}),
        (f"{N}.motor1", {"speed": 1490.0}),
    ]


def test_metric_timestamps_split_a_message_into_readings() -> None:
    host = SparkplugHost()
    born(host)
    out = host.receive(
        f"spBv1.0/{G}/NDATA/{N}",
        payload(
            2,
            dbl(None, 1.0, alias=1, timestamp=T0 + 20),
            {"alias": 2, "datatype": pb.Boolean, "boolean_value": False, "timestamp": T0 + 10},
        ),
        T0 + 30,
    )
    assert [(r.ts, r.metrics) for r in readings(out)] == [
        (T0 + 10, {"running": False}),
        (T0 + 20, {"motor_1_temperature": 1.0}),
    ]


def test_ddeath_takes_the_device_offline_and_its_data_needs_a_new_birth() -> None:
    host = SparkplugHost()
    born(host)
    out = host.receive(f"spBv1.0/{G}/DDEATH/{N}/motor1", payload(2), T0 + 1)
    assert statuses(out) == [(f"{N}.motor1", "offline")]
    out = host.receive(f"spBv1.0/{G}/DDATA/{N}/motor1", payload(3, dbl(None, 1, 10)), T0 + 2)
    assert readings(out) == []
    assert host.counts["before_birth"] == 1
    assert [c.topic for c in commands(out)] == [f"spBv1.0/{G}/NCMD/{N}"]


def test_ndeath_with_the_current_bdseq_takes_node_and_devices_offline() -> None:
    host = SparkplugHost()
    born(host, bd=4)
    out = host.receive(f"spBv1.0/{G}/NDEATH/{N}", payload(None, bdseq(4)), T0 + 5)
    assert sorted(statuses(out)) == [(N, "offline"), (f"{N}.motor1", "offline")]
    assert host.online_nodes() == 0


def test_ndeath_with_an_old_bdseq_is_ignored_and_counted() -> None:
    host = SparkplugHost()
    born(host, bd=5)
    out = host.receive(f"spBv1.0/{G}/NDEATH/{N}", payload(None, bdseq(4)), T0 + 5)
    assert statuses(out) == []
    assert host.counts["ndeath_old_bdseq"] == 1
    assert [n.reason for n in out if isinstance(n, Notice)] == ["ndeath_old_bdseq"]
    # the node is still alive
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 3.0, alias=1)), T0 + 6)
    assert readings(out)[0].metrics == {"motor_1_temperature": 3.0}


def test_a_new_nbirth_forgets_the_devices_births() -> None:
    host = SparkplugHost()
    born(host)
    host.receive(f"spBv1.0/{G}/NBIRTH/{N}", payload(0, bdseq(1), dbl("A", alias=1)), T0 + 1)
    out = host.receive(f"spBv1.0/{G}/DDATA/{N}/motor1", payload(1, dbl(None, 1, 10)), T0 + 2)
    assert readings(out) == []
    assert host.counts["before_birth"] == 1


# -- seq ---------------------------------------------------------------------------------


def test_seq_wraps_from_255_to_0_without_a_gap() -> None:
    host = SparkplugHost()
    born(host)
    values = []
    for i in range(2, 300):
        out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(i % 256, dbl(None, i, 1)), T0 + i)
        values += [r.metrics["motor_1_temperature"] for r in readings(out)]
    assert values == [float(i) for i in range(2, 300)]
    assert host.counts["seq_out_of_order"] == 0
    assert host.tick(T0 + 10**6) == []


def test_out_of_order_messages_are_held_and_applied_in_order() -> None:
    host = SparkplugHost(reorder_timeout_ms=1000)
    born(host)
    first = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(3, dbl(None, 3.0, 1)), T0 + 1)
    assert readings(first) == []
    assert host.counts["seq_out_of_order"] == 1
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 2.0, 1)), T0 + 2)
    assert [r.metrics["motor_1_temperature"] for r in readings(out)] == [2.0, 3.0]
    assert commands(out) == []
    assert host.tick(T0 + 5000) == []  # nothing held any more: no rebirth


def test_a_gap_that_outlives_the_reorder_timeout_requests_a_rebirth() -> None:
    host = SparkplugHost(reorder_timeout_ms=1000)
    born(host)
    host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(4, dbl(None, 4.0, 1)), T0)
    host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(5, dbl(None, 5.0, 1)), T0 + 10)
    assert host.tick(T0 + 999) == []
    out = host.tick(T0 + 1000)
    assert [r.metrics["motor_1_temperature"] for r in readings(out)] == [4.0, 5.0]
    (cmd,) = commands(out)
    assert cmd.topic == f"spBv1.0/{G}/NCMD/{N}"
    sent = pb.Payload.FromString(cmd.payload)
    assert [(m.name, m.datatype, m.boolean_value) for m in sent.metrics] == [
        ("Node Control/Rebirth", pb.Boolean, True)
    ]
    assert host.counts["seq_gap"] == 1
    assert host.rebirths_requested_total == 1
    # the stream goes on after the held ones
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(6, dbl(None, 6.0, 1)), T0 + 1001)
    assert [r.metrics["motor_1_temperature"] for r in readings(out)] == [6.0]


def test_a_late_straggler_is_applied_and_counted() -> None:
    host = SparkplugHost()
    born(host)
    host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 2.0, 1)), T0)
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(1, dbl(None, 1.0, 1)), T0 + 1)
    assert [r.metrics for r in readings(out)] == [{"motor_1_temperature": 1.0}]
    assert host.counts["seq_late"] == 1


def test_data_before_any_birth_requests_a_rebirth_at_most_once_per_timeout() -> None:
    host = SparkplugHost(reorder_timeout_ms=1000)
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(7, dbl(None, 1, 1)), T0)
    out += host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(8, dbl(None, 1, 1)), T0 + 10)
    assert len(commands(out)) == 1
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", payload(9, dbl(None, 1, 1)), T0 + 1010)
    assert len(commands(out)) == 1
    assert host.counts["before_birth"] == 3


# -- what is skipped ---------------------------------------------------------------------


def test_unknown_alias_is_counted_the_rest_kept_and_a_rebirth_requested() -> None:
    host = SparkplugHost()
    born(host)
    out = host.receive(
        f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 9.0, 99), dbl(None, 7.0, 1)), T0 + 1
    )
    assert [r.metrics for r in readings(out)] == [{"motor_1_temperature": 7.0}]
    assert host.counts["unknown_alias"] == 1
    assert len(commands(out)) == 1


def test_historical_transient_and_non_numeric_metrics_are_counted_and_skipped() -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        payload(
            0,
            bdseq(0),
            dbl("T", 1.0, alias=1),
            {"name": "Label", "datatype": pb.String, "string_value": "ok"},
            {"name": "Table", "datatype": pb.DataSet, "dataset_value": pb.Payload.DataSet()},
            {"name": "Udt", "datatype": pb.Template, "template_value": pb.Payload.Template()},
            {"name": "Blob", "datatype": pb.Bytes, "bytes_value": b"x"},
            {"name": "Nothing", "datatype": pb.Double, "is_null": True},
        ),
        T0,
    )
    assert [r.metrics for r in readings(out)] == [{"t": 1.0}]
    out = host.receive(
        f"spBv1.0/{G}/NDATA/{N}",
        payload(1, dbl(None, 5.0, 1, is_historical=True, timestamp=T0 - 60_000)),
        T0 + 1,
    )
    out += host.receive(
        f"spBv1.0/{G}/NDATA/{N}", payload(2, dbl(None, 6.0, 1, is_transient=True)), T0 + 2
    )
    assert readings(out) == []
    for reason in ("string", "dataset", "template", "unsupported_type", "null_value"):
        assert host.counts[reason] == 1, reason
    assert host.counts["historical"] == 1
    assert host.counts["transient"] == 1


def test_signed_integers_non_finite_and_huge_values() -> None:
    host = SparkplugHost()
    out = host.receive(
        f"spBv1.0/{G}/NBIRTH/{N}",
        payload(
            0,
            {"name": "I16", "datatype": pb.Int16, "int_value": (-5) & 0xFFFF},
            {"name": "I64", "datatype": pb.Int64, "long_value": (-7) & (2**64 - 1)},
            {"name": "U32", "datatype": pb.UInt32, "int_value": 4_000_000_000},
            {"name": "F", "datatype": pb.Float, "float_value": 0.5},
            {"name": "Nan", "datatype": pb.Double, "double_value": float("nan")},
            {"name": "Huge", "datatype": pb.Double, "double_value": 1e300},
            {"name": "Wrong", "datatype": pb.Double, "string_value": "1"},
        ),
        T0,
    )
    assert readings(out)[0].metrics == {"i16": -5.0, "i64": -7.0, "u32": 4e9, "f": 0.5}
    assert host.counts["non_finite_number"] == 1
    assert host.counts["value_out_of_range"] == 1
    assert host.counts["value_type_mismatch"] == 1


def test_a_corrupt_payload_is_refused_and_other_data_still_flows() -> None:
    host = SparkplugHost()
    born(host)
    good = payload(2, dbl(None, 2.0, 1))
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", good[: len(good) - 3], T0 + 1)
    assert [(o.reason, o.device_id) for o in out if isinstance(o, Refused)] == [
        ("sparkplug_bad_payload", N)
    ]
    out = host.receive(f"spBv1.0/{G}/NDATA/{N}", good, T0 + 2)
    assert [r.metrics for r in readings(out)] == [{"motor_1_temperature": 2.0}]


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("spBv1.0/g/NDATA", "sparkplug_bad_topic"),
        ("spBv1.0/g/DDATA/node", "sparkplug_bad_topic"),
        ("spBv1.0/g/NDATA/node/dev", "sparkplug_bad_topic"),
        ("spBv1.0/g/NCMD/node", "sparkplug_bad_topic"),
        ("spBv1.0/bad group/NDATA/node", "sparkplug_bad_id"),
        ("spBv1.0/g/DDATA/node/" + "d" * 64, "sparkplug_bad_id"),
    ],
)
def test_topics_we_cannot_map_are_refused(topic: str, reason: str) -> None:
    host = SparkplugHost()
    out = host.receive(topic, payload(0), T0)
    assert [o.reason for o in out if isinstance(o, Refused)] == [reason]
    assert host.counts[reason] == 1


# -- reporting ---------------------------------------------------------------------------


def test_device_metrics_report_original_names_types_and_units() -> None:
    host = SparkplugHost()
    born(host)
    mapping = host.device_metrics()
    assert mapping[(G, N)]["motor_1_temperature"] == MetricInfo(
        "Motor 1/Temperature", "motor_1_temperature", 1, "Double", "degC"
    )
    assert mapping[(G, f"{N}.motor1")]["speed"].original == "Speed"


def test_state_payload_is_the_specifications_json() -> None:
    assert json.loads(state_payload(True, 123)) == {"online": True, "timestamp": 123}
    assert json.loads(state_payload(False, 5)) == {"online": False, "timestamp": 5}
