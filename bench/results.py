"""Headline figures of a bench run, one JSON line each, appended to the file named by
`BENCH_RESULTS` (unset: not written), for `python -m bench.summary` to print as one table."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Figure:
    bench: str  # the module: edge_pipeline, hub_ingest, web_live
    name: str  # what was measured
    value: float
    unit: str
    ratio: float | None = None  # to the reference measured in the same run
    reference: str | None = None  # what the ratio is to

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Figure:
        return cls(**json.loads(line))


def record(figure: Figure, path: str | None = None) -> None:
    target = path if path is not None else os.environ.get("BENCH_RESULTS")
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as f:
        f.write(figure.to_json() + "\n")
