"""Durations as people type them on the command line: `90s`, `45m`, `12h`, `30d`, `2w`."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["parse_duration"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(text: str) -> int:
    """Seconds, or ValueError with an example of what is accepted."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: a whole number and a unit s, m, h, d or w "
            "(e.g. 30d, 12h, 90m)"
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return seconds
