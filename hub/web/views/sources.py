"""Where a chart's points came from, as its status line says it: no UI, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from hub.web.model import Series

_LABELS: Final = {
    "raw": "raw readings",
    "1m": "1-minute rollups",
    "1h": "hourly rollups",
    "1d": "daily rollups",
}
_COARSENESS: Final = tuple(_LABELS)


def source_label(series: Iterable[Series]) -> str:
    """The coarsest source among the charts' series (they share one range, so usually one)."""
    sources = {s.source for s in series}
    coarsest = max(sources, key=_COARSENESS.index, default="raw")
    return _LABELS[coarsest]
