"""Modbus registers -> values, and which requests read a device's configured values. Pure."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edge_gateway.connectors.config import ModbusTable, ModbusValue

# Modbus application protocol v1.1b3, 6.1-6.4: at most 2000 bits or 125 registers per read.
MAX_BITS = 2000
MAX_REGISTERS = 125

_FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}


class NotFinite(ValueError):
    """A register pair that decodes to NaN or infinity (a sensor fault or an unset value)."""


def decode_registers(words: Sequence[int], value: ModbusValue) -> float:
    """The scaled value of `value` from its registers (`words`, 16-bit each, in address order)."""
    ordered = list(words) if value.word_order == "big" else list(reversed(words))
    raw_bytes = b"".join(w.to_bytes(2, value.byte_order) for w in ordered)
    (raw,) = struct.unpack(">" + _FORMATS[value.type], raw_bytes)
    result = float(raw) * value.scale + value.offset
    if not math.isfinite(result):
        raise NotFinite(f"{value.metric} decodes to {result}")
    return result


def encode_registers(number: float, value: ModbusValue) -> list[int]:
    """The inverse of `decode_registers` for an unscaled raw number (simulators, tests)."""
    fmt = _FORMATS[value.type]
    raw: float | int = number if fmt == "f" else int(number)
    data = struct.pack(">" + fmt, raw)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    out = [int.from_bytes(w, value.byte_order) for w in words]
    return out if value.word_order == "big" else list(reversed(out))


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One request: `count` registers or bits of `table` from `address`, feeding `values`."""

    table: ModbusTable
    address: int
    count: int
    values: tuple[ModbusValue, ...]


def plan_reads(values: Sequence[ModbusValue], max_gap: int) -> list[ReadBlock]:
    """Contiguous reads: values of one table whose addresses are at most `max_gap` apart share a
    request, within the protocol's per-request limit."""
    blocks: list[ReadBlock] = []
    by_table: dict[ModbusTable, list[ModbusValue]] = {}
    for v in values:
        by_table.setdefault(v.table, []).append(v)
    for table, members in by_table.items():
        limit = MAX_BITS if members[0].is_bit else MAX_REGISTERS
        members.sort(key=lambda v: v.address)
        start, end = members[0].address, 0  # end: one past the last address
        current: list[ModbusValue] = []
        for v in members:
            v_end = v.address + v.width
            if current and (v.address - end > max_gap or max(end, v_end) - start > limit):
                blocks.append(ReadBlock(table, start, end - start, tuple(current)))
                current = []
            if not current:
                start, end = v.address, v_end
            current.append(v)
            end = max(end, v_end)
        blocks.append(ReadBlock(table, start, end - start, tuple(current)))
    return blocks


def block_values(
    block: ReadBlock, data: Sequence[int] | Sequence[bool]
) -> tuple[dict[str, float | bool], list[str]]:
    """Values decoded from one block's response, and the metrics skipped as not finite."""
    out: dict[str, float | bool] = {}
    skipped: list[str] = []
    for v in block.values:
        i = v.address - block.address
        if v.is_bit:
            out[v.metric] = bool(data[i])
            continue
        try:
            out[v.metric] = decode_registers([int(w) for w in data[i : i + v.width]], v)
        except NotFinite:
            skipped.append(v.metric)
    return out, skipped
