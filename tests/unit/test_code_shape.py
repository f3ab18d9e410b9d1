"""The hub's functions stay short enough to read in one screen (issue 11's rule: about 60
lines); a longer one is split into functions of one job each."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def long_functions(directory: Path) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    where = f"{path.relative_to(directory)}:{node.lineno}"
                    found.append(f"{where} {node.name} ({lines})")
    return found


def test_no_hub_function_is_longer_than_60_lines() -> None:
    assert long_functions(ROOT / "hub") == []


def test_the_check_sees_long_functions_nested_ones_too(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"class C:\n    def long(self):\n{body}\n")
    assert long_functions(tmp_path) == [f"m.py:2 long ({MAX_LINES + 1})"]
