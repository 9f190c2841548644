"""The bench runner: discovery, selection, result files and tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import discover, select, summary_table, table, write


def test_discovers_the_exporter_benchmark() -> None:
    found, broken = discover()
    assert broken == []
    assert found["exporter_metrics"][0] == "bench.exporter_metrics"
    assert select(found, ["exporter_metrics"]) == ["exporter_metrics"]
    assert select(found, ["bench.exporter_metrics"]) == ["exporter_metrics"]
    assert select(found, []) == sorted(found)


def test_unknown_name_is_an_error_naming_it() -> None:
    found, _ = discover()
    with pytest.raises(SystemExit, match="no benchmark or module called 'nope'"):
        select(found, ["nope"])


def test_result_file_and_tables(tmp_path: Path) -> None:
    path = write(tmp_path / "results", "demo", {"name": "demo", "figures": {"p99_ms": 1.5}})
    assert json.loads(path.read_text())["figures"] == {"p99_ms": 1.5}
    assert not list((tmp_path / "results").glob("*.tmp"))
    text = table("demo", {"p99_ms": 1.23456, "goals": {"fast": True, "small": False}})
    assert text.splitlines() == [
        "== demo",
        "  p99_ms  1.235",
        "  goal met     fast",
        "  goal MISSED  small",
    ]
    assert summary_table([("demo", "goal missed", 2.0)]).splitlines()[1].split() == [
        "demo",
        "goal",
        "missed",
        "2.0s",
    ]


def test_list_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "exporter_metrics  (bench.exporter_metrics)" in result.stdout
