"""A multirun keeps going past a failed point, summarises every job, and a relaunch skips what finished."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_entry, stored_runs, tracking_overrides

LOGREG = ["data=janitr", "data.max_rows=300", "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0"]


def test_a_failed_point_does_not_stop_the_sweep(tmp_path: Path, store: dict[str, str]) -> None:
    places = [*tracking_overrides(store), f"paths.multirun_dir={tmp_path / 'multirun'}"]
    swept = run_entry("train", "-m", *LOGREG, "model.C=1,-1,2", *places)  # C=-1 fails inside fit
    assert swept.returncode == 1, swept.stderr[-2000:]
    assert "error: job 1 (" in swept.stderr and "model.C=-1" in swept.stderr
    assert "sweep: 2 done, 0 skipped, 1 failed" in swept.stdout
    assert "run the sweep again with resume=auto" in swept.stdout
    assert sorted(run.info.status for run in stored_runs(store)) == ["FAILED", "FINISHED", "FINISHED"]

    again = run_entry("train", "-m", *LOGREG, "model.C=1,2", "resume=auto", *places)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "sweep: 0 done, 2 skipped, 0 failed" in again.stdout and len(stored_runs(store)) == 3
