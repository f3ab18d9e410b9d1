"""The binary COPY data of `readings` rows, byte for byte (the format: "COPY", Binary Format,
in the PostgreSQL manual). That PostgreSQL reads it back the same is
tests/integration/test_storage_readings.py."""

from __future__ import annotations

import pytest

from hub.storage.copy_binary import readings_copy
from tests.support.readings import make_reading

HEADER = bytes.fromhex("5047434f50590aff0d0a000000000000000000")  # PGCOPY\n\xff\r\n\0
TRAILER = bytes.fromhex("ffff")
# 2000-01-01T00:00:01.5Z: 1,500,000 us after PostgreSQL's epoch.
TS_MS = 946_684_801_500
TS = bytes.fromhex("00000008000000000016e360")


def row(device: bytes, metric: bytes, value: str, seq: str | None) -> bytes:
    fields = bytes.fromhex("0005")
    fields += len(device).to_bytes(4, "big") + device
    fields += len(metric).to_bytes(4, "big") + metric
    fields += TS + bytes.fromhex("00000008" + value)
    return fields + bytes.fromhex("ffffffff" if seq is None else "00000008" + seq)


def test_rows_of_each_metric_in_order() -> None:
    readings = [
        make_reading("d1", TS_MS, {"temp": 1.5, "on": True}, seq=258),
        make_reading("d22", TS_MS, {"temp": -2.0}, seq=None),
    ]
    data, rows = readings_copy(readings)
    assert rows == 3
    assert bytes(data) == (
        HEADER
        + row(b"d1", b"temp", "3ff8000000000000", "0000000000000102")
        + row(b"d1", b"on", "3ff0000000000000", "0000000000000102")
        + row(b"d22", b"temp", "c000000000000000", None)
        + TRAILER
    )


def test_no_readings_no_rows() -> None:
    data, rows = readings_copy([])
    assert (bytes(data), rows) == (HEADER + TRAILER, 0)


def test_a_number_beyond_64_bits_is_a_value_error() -> None:
    reading = make_reading("d1", TS_MS, {"temp": 1.5}, seq=1).model_copy(update={"seq": 2**63})
    with pytest.raises(ValueError, match="does not fit"):
        readings_copy([reading])
