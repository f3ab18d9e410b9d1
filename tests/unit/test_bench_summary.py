"""The benches' headline figures: one JSON line each, printed by `python -m bench.summary` as
one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.results import Figure, record
from bench.summary import main, table


def test_figures_are_appended_only_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    record(Figure("hub_ingest", "hub ingest", 1.0, "rows/s"))  # nowhere: not an error
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv("BENCH_RESULTS", str(path))
    first = Figure("hub_ingest", "hub ingest, one worker", 21_400.0, "rows/s", 0.0873, "one COPY")
    second = Figure("web_live", "p99, 50 client(s)", 95.2, "ms")
    record(first)
    record(second)
    lines = path.read_text().splitlines()
    assert [Figure.from_json(line) for line in lines] == [first, second]


def test_the_table_lines_up_values_and_ratios() -> None:
    text = table(
        [
            Figure("edge_pipeline", "gateway via Mosquitto, median of 3", 6543.2, "readings/s",
                   0.297, "naive pipe"),
            Figure("web_live", "publish -> WebSocket p99, 1 client(s)", 9.87, "ms"),
        ]
    )  # fmt: skip
    header, rule, edge, web = text.splitlines()
    assert header.split() == ["bench", "figure", "value", "vs", "reference"]
    assert set(rule) == {"-", " "}
    assert "6,543 readings/s" in edge
    assert edge.endswith("0.30 x naive pipe")
    assert "9.87 ms" in web
    assert edge.index("readings/s") + len("readings/s") == web.index("ms") + len("ms")


def test_summary_prints_the_file_or_says_there_is_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.jsonl"
    assert main([str(path)]) == 1
    record(Figure("hub_ingest", "alert latency p99", 120.0, "ms"), str(path))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "== make bench: summary ==" in out
    assert "alert latency p99" in out
