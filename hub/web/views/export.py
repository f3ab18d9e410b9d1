"""The CSV export of a chart's series: safe file names, and cells a spreadsheet will not run
as formulas."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from hub.web.model import Series

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_filename(*parts: str) -> str:
    name = "_".join(_UNSAFE_FILENAME.sub("-", p).strip("-.") or "x" for p in parts)
    return name[:150]


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_export(series: Iterable[Series]) -> bytes:
    """One row per point: device, metric, UTC time (ISO 8601), epoch ms, value; UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["device_id", "metric", "time_utc", "ts_ms", "value"])
    for s in series:
        device, metric = _cell(s.device_id), _cell(s.metric)
        for ts, value in zip(s.ts, s.values, strict=True):
            stamp = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")
            writer.writerow([device, metric, stamp.replace("+00:00", "Z"), ts, repr(value)])
    return out.getvalue().encode()
