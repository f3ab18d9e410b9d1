"""The rows of `readings` in PostgreSQL's binary COPY format, built in one pass. Pure: no I/O.

asyncpg's `copy_records_to_table` wants one Python tuple per row (device, metric, datetime,
value, seq) and encodes them itself: making those tuples and encoding them was about a tenth of
the worker's CPU at full rate. Here the rows are written straight from the readings: each
(device, metric) prefix is encoded once per batch, each row's ts, value and seq by one struct
call. The same bytes `copy_records_to_table` sends (format: "COPY", Binary Format, in the
PostgreSQL manual); the columns are `READINGS_COLUMNS`, as typed in db/0001_init.sql.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from protocol import NormalisedReading

READINGS_COLUMNS: Final = ("device_id", "metric", "ts", "value", "seq")

# Signature, flags (none: no OIDs), header extension length (none).
_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER: Final = struct.pack(">h", -1)
# timestamptz: microseconds since 2000-01-01 UTC (integer datetimes, PostgreSQL's only kind
# since version 10).
_PG_EPOCH_MS: Final = 946_684_800_000
# Each field is its length in bytes, then its value: ts (int8), value (float8), seq (int8);
# a NULL seq is the length -1 and no value.
_TAIL: Final = struct.Struct(">iqidiq")
_TAIL_NULL_SEQ: Final = struct.Struct(">iqidi")


def _prefix(device_id: str, metric: str) -> bytes:
    """The field count and the two text fields of a row."""
    device, name = device_id.encode(), metric.encode()
    return (
        struct.pack(">hi", len(READINGS_COLUMNS), len(device))
        + device
        + (struct.pack(">i", len(name)) + name)
    )


def readings_copy(readings: Iterable[NormalisedReading]) -> tuple[bytearray, int]:
    """The COPY data of one row per metric of every reading (a boolean as 1.0 or 0.0, the
    schema's encoding, as `hub.storage.model.flatten_readings`), and the number of rows."""
    parts = [_HEADER]
    append = parts.append
    prefixes: dict[str, dict[str, bytes]] = {}
    tail, tail_null_seq = _TAIL.pack, _TAIL_NULL_SEQ.pack
    rows = 0
    try:
        for reading in readings:
            device_id = reading.device_id
            mine = prefixes.get(device_id)
            if mine is None:
                mine = prefixes[device_id] = {}
            ts_us = (reading.ts - _PG_EPOCH_MS) * 1000
            seq = reading.seq
            for metric, value in reading.metrics.items():
                prefix = mine.get(metric)
                if prefix is None:
                    prefix = mine[metric] = _prefix(device_id, metric)
                append(prefix)
                if seq is None:
                    append(tail_null_seq(8, ts_us, 8, value, -1))
                else:
                    append(tail(8, ts_us, 8, value, 8, seq))
            rows += len(reading.metrics)
    except struct.error as exc:
        # A number beyond its column's 64 bits (the wire models bound every one, so only a
        # reading made some other way): a ValueError, as asyncpg's encoders raise, which the
        # ingest's poison isolation puts on the record.
        raise ValueError(f"a reading does not fit the readings table: {exc}") from None
    append(_TRAILER)
    # A bytearray: asyncpg takes bytes for a file name, and a buffer for the data itself.
    return bytearray().join(parts), rows
