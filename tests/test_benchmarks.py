"""The benchmark scripts share one harness: each one's command line parses, its records are written whole,
and timings compared side by side are interleaved. (The benchmarks themselves run outside the suite.)"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from toxmod.paths import project_root

pytestmark = pytest.mark.data_free

BENCHMARKS = project_root() / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
NO_RECORD = {"mlflow_ui.py": "screenshots only", "faults.py": "results/faults-<label>.json, by its label"}


@pytest.fixture()
def harness(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the harness module
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import harness

    return harness


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_parses_its_command_line(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    assert exited.value.code == 0
    if script.name not in NO_RECORD:
        assert "--output" in shown.getvalue()  # the harness's parser: one place for the JSON record


def test_results_are_written_whole(harness, tmp_path: Path) -> None:  # noqa: ANN001
    output, page = tmp_path / "results" / "x.json", tmp_path / "docs" / "x.md"
    harness.write_results({"rows": [1, 2]}, output, "# x\n", page)
    assert json.loads(output.read_text()) == {"rows": [1, 2]} and page.read_text() == "# x\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["docs", "results", "x.json", "x.md"]
    with pytest.raises(TypeError):  # a record that cannot be written leaves the previous one
        harness.write_results({"rows": object()}, output)
    assert json.loads(output.read_text()) == {"rows": [1, 2]}


def test_provenance_names_the_command_machine_and_code(harness) -> None:  # noqa: ANN001
    record = harness.provenance("x.py", ["--run", "/home/me/runs/a", "--seeds", "3"])
    assert record["command"] == "python benchmarks/x.py --run '<runs>/a' --seeds 3"
    assert "cores" in record["machine"] and record["code"] != "unknown"
    assert set(record) == {"command", "machine", "code", "generated"}


def test_candidates_are_timed_in_turn(harness) -> None:  # noqa: ANN001
    calls: list[str] = []
    times = harness.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4  # one untimed round, then A B three times
    assert [len(v) for v in times.values()] == [3, 3]
    assert harness.medians({"a": [3.0, 1.0, 2.0]}) == {"a": 2.0}


def test_a_fault_program_runs_as_a_file_of_its_own(tmp_path: Path) -> None:
    program = BENCHMARKS / "fault_programs" / "cache_probe.py"
    result = subprocess.run(
        [sys.executable, str(program), str(tmp_path / "entry")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("refused:")  # an unlisted file in a teacher cache entry
