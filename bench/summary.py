"""`python -m bench.summary [FILE]`: the figures the benches recorded (`bench.results`, file
`BENCH_RESULTS` by default) as one table, in the order they were measured."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from bench.results import Figure


def _value(figure: Figure) -> str:
    digits = 0 if abs(figure.value) >= 100 else 1 if abs(figure.value) >= 10 else 2
    return f"{figure.value:,.{digits}f} {figure.unit}"


def table(figures: Iterable[Figure]) -> str:
    """Columns bench, figure, value, and the ratio to the run's reference where there is one."""
    rows = [("bench", "figure", "value", "vs reference")]
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:.2f} x {f.reference or 'reference'}"
        rows.append((f.bench, f.name, _value(f), ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(
            cell.rjust(width) if i == 2 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", default=os.environ.get("BENCH_RESULTS"))
    args = parser.parse_args(argv)
    if not args.file or not Path(args.file).exists():
        print("no bench results recorded (set BENCH_RESULTS for the benches)", file=sys.stderr)
        return 1
    lines = Path(args.file).read_text(encoding="utf-8").splitlines()
    print("== make bench: summary ==")
    print(table(Figure.from_json(line) for line in lines if line.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
