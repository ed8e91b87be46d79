"""A multirun keeps going past a failed point, summarises every job, and a relaunch skips what finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_entry, stored_runs, tracking_overrides

LOGREG = ["data=janitr", "data.max_rows=300", "model=tfidf_logreg", "model.max_features=2000", "bootstrap=0"]


def test_a_failed_point_does_not_stop_the_sweep(tmp_path: Path, store: dict[str, str]) -> None:
    places = [*tracking_overrides(store), f"paths.multirun_dir={tmp_path / 'multirun'}"]
    swept = run_entry("train", "-m", *LOGREG, "model.C=1,-1,2", *places)  # C=-1 fails inside fit
    assert swept.returncode == 1, swept.stderr[-2000:]
    assert "error: job 1 (" in swept.stderr and "model.C=-1" in swept.stderr
    assert "sweep: 2 done, 0 skipped, 1 failed" in swept.stdout
    assert "run the sweep again with resume=auto" in swept.stdout
    runs = stored_runs(store, sweep_parents=True)
    [parent] = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    jobs = [run for run in runs if run is not parent]
    assert sorted(run.info.status for run in jobs) == ["FAILED", "FINISHED", "FINISHED"]
    # One sweep in the MLflow UI: the jobs nest under a parent run, all tagged with the sweep's id.
    assert {run.data.tags["mlflow.parentRunId"] for run in jobs} == {parent.info.run_id}
    assert {run.data.tags["sweep_id"] for run in jobs} == {parent.data.tags["sweep_id"]}
    assert parent.info.status == "FAILED" and parent.info.run_name.startswith("FAILED sweep ")

    again = run_entry("train", "-m", *LOGREG, "model.C=1,2", "resume=auto", *places)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "sweep: 0 done, 2 skipped, 0 failed" in again.stdout and len(stored_runs(store)) == 3


@pytest.mark.slow
def test_two_jobs_in_parallel_on_one_store_both_finish(tmp_path: Path, store: dict[str, str]) -> None:
    places = [*tracking_overrides(store), f"paths.multirun_dir={tmp_path / 'multirun'}"]
    parallel = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    swept = run_entry("train", "-m", *LOGREG, "model.C=1,2", *parallel, *places)
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert "sweep: 2 done, 0 skipped, 0 failed" in swept.stdout
    runs = stored_runs(store, sweep_parents=True)
    assert sorted(run.info.status for run in runs) == ["FINISHED"] * 3  # two jobs and their sweep
    assert len({run.data.tags.get("mlflow.parentRunId") for run in runs if "sweep" not in run.data.tags}) == 1
