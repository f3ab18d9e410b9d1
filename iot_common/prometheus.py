"""The Prometheus text exposition format 0.0.4, written by both installs' `/metrics` (and read
back by tests and benchmarks). No client library: a few families per process."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: a name, its type and help, and its samples (labels, value)."""

    name: str
    type: Literal["counter", "gauge"]
    help: str
    samples: Sequence[tuple[Labels, float]]


def _escape_label(value: str) -> str:
    # Exposition format 0.0.4: backslash, double quote and line feed are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families``, in the order given; ends with a line feed."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if labels:
                inner = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels)
                lines.append(f"{family.name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def one(value: float) -> list[tuple[Labels, float]]:
    """The samples of a family without labels."""
    return [((), value)]


def parse(text: str) -> Mapping[str, float]:
    """Sample lines of an exposition as {"name{labels}": value}: for tests and the benchmark."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples
