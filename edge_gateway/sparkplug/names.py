"""Sparkplug metric names -> our metric names `[a-z][a-z0-9_]{0,63}`. Pure.

Lower case; every run of other characters becomes one `_`; leading/trailing `_` dropped; a name
that would start with a digit gets `m_` in front, an empty one becomes `metric`; at most 64
characters. Two originals that land on the same name are told apart by `_2`, `_3`... in the order
of their original names (sorted), so a rebirth listing them in another order maps them alike."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

MAX_LEN: Final = 64
_OTHER = re.compile(r"[^a-z0-9]+")


def normalise(name: str) -> str:
    base = _OTHER.sub("_", name.lower()).strip("_")
    if not base:
        base = "metric"
    elif base[0].isdigit():
        base = f"m_{base}"
    return base[:MAX_LEN].rstrip("_")


def normalise_all(names: Iterable[str]) -> dict[str, str]:
    """original -> normalised, unique within the set."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for original in sorted(set(names)):
        base = candidate = normalise(original)
        n = 1
        while candidate in taken:
            n += 1
            suffix = f"_{n}"
            candidate = base[: MAX_LEN - len(suffix)] + suffix
        taken.add(candidate)
        out[original] = candidate
    return out
