"""Register decoding (types, word and byte order, scale, NaN) and read planning."""

from __future__ import annotations

import math

import pytest

from edge_gateway.connectors.config import ModbusType, ModbusValue, Order
from edge_gateway.connectors.modbus_codec import (
    MAX_REGISTERS,
    NotFinite,
    block_values,
    decode_registers,
    encode_registers,
    plan_reads,
)


def value(type_: ModbusType = "uint16", address: int = 0, **kw: object) -> ModbusValue:
    return ModbusValue.model_validate({"metric": "m", "address": address, "type": type_, **kw})


@pytest.mark.parametrize(
    ("type_", "words", "expected"),
    [
        ("int16", [0xFFFE], -2),
        ("uint16", [0xFFFE], 65534),
        ("int32", [0xFFFF, 0xFFFE], -2),
        ("uint32", [0x0001, 0x0000], 65536),
        ("float32", [0x4248, 0x0000], 50.0),
    ],
)
def test_types_big_endian(type_: ModbusType, words: list[int], expected: float) -> None:
    assert decode_registers(words, value(type_)) == expected


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_orders_round_trip(word_order: Order, byte_order: Order) -> None:
    v = value("float32", word_order=word_order, byte_order=byte_order)
    words = encode_registers(-12.25, v)
    assert decode_registers(words, v) == -12.25
    if word_order == "little" and byte_order == "little":
        # 0xC1440000 with both orders swapped: 0x0000, then 0x44C1.
        assert words == [0x0000, 0x44C1]


def test_scale_and_offset() -> None:
    assert decode_registers([250], value("int16", scale=0.1, offset=-5)) == pytest.approx(20.0)


def test_nan_and_inf_are_refused() -> None:
    with pytest.raises(NotFinite):
        decode_registers([0x7FC0, 0x0000], value("float32"))
    with pytest.raises(NotFinite):
        decode_registers([0x7F80, 0x0000], value("float32"))


def test_contiguous_values_share_a_read_and_gaps_split() -> None:
    values = [
        value("float32", 0),
        value("uint16", 2),
        value("uint16", 5),  # gap of 2 <= max_gap: same read
        value("uint16", 40),  # far: its own read
        value("uint16", 1, table="input"),
        ModbusValue(metric="b", table="coil", address=3),
    ]
    blocks = plan_reads(values, max_gap=3)
    summary = sorted((b.table, b.address, b.count, len(b.values)) for b in blocks)
    assert summary == [
        ("coil", 3, 1, 1),
        ("holding", 0, 6, 3),
        ("holding", 40, 1, 1),
        ("input", 1, 1, 1),
    ]


def test_reads_stay_within_the_protocol_limit() -> None:
    values = [value("uint16", a) for a in range(0, 300)]
    blocks = plan_reads(values, max_gap=0)
    assert all(b.count <= MAX_REGISTERS for b in blocks)
    assert sum(len(b.values) for b in blocks) == 300


def test_block_values_skip_not_finite() -> None:
    ok, nan = value("float32", 0), value("float32", 2)
    ok = ok.model_copy(update={"metric": "ok"})
    nan = nan.model_copy(update={"metric": "nan"})
    (block,) = plan_reads([ok, nan], max_gap=0)
    values, skipped = block_values(block, [0x4248, 0, 0x7FC0, 0])
    assert values == {"ok": 50.0}
    assert skipped == ["nan"]
    assert not math.isnan(values["ok"])
