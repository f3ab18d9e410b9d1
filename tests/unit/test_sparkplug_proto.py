"""The committed protobuf module is exactly what protoc makes of the committed .proto."""

from __future__ import annotations

import struct
from pathlib import Path

from edge_gateway.sparkplug import generate
from edge_gateway.sparkplug import sparkplug_b_pb2 as pb


def test_committed_module_matches_the_proto(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        committed = (generate.HERE / name).read_text()
        assert committed == fresh, f"{name} is stale: run python -m edge_gateway.sparkplug.generate"


def test_wire_format_is_the_specifications() -> None:
    # Hand-encoded bytes per the spec's field numbers: timestamp=1, metrics=2, seq=3;
    # Metric alias=2, datatype=4, double_value=13.
    metric = bytes([0x10, 0x07, 0x20, 0x0A, 0x69]) + struct.pack("<d", 21.5)
    raw = bytes([0x08, 0x64, 0x12, len(metric)]) + metric + bytes([0x18, 0x05])
    payload = pb.Payload.FromString(raw)
    assert payload.timestamp == 100
    assert payload.seq == 5
    (m,) = payload.metrics
    assert (m.alias, m.datatype, m.double_value) == (7, pb.Double, 21.5)
    assert m.WhichOneof("value") == "double_value"
    assert payload.SerializeToString() == raw
