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
    # each of the two parallel jobs runs with its share of this machine's CPUs, and records it
    import os

    jobs = [run for run in runs if "sweep" not in run.data.tags]
    share = str(max(len(os.sched_getaffinity(0)) // 2, 1))
    assert [run.data.params["hardware.resolved.threads"] for run in jobs] == [share, share]
    assert all(run.data.tags["hardware.threads_from"].endswith("/ 2 parallel jobs") for run in jobs)


def test_a_slurm_launcher_composes_for_a_sweep() -> None:
    """``hydra/launcher=submitit_slurm`` (composed, not run: there is no cluster here)."""
    from hydra import compose, initialize_config_dir

    from toxmod.config import register_resolvers
    from toxmod.paths import CONFIG_DIR

    register_resolvers()
    overrides = [
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=1",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "hardware=cuda"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert cfg.hydra.callbacks.sweep_summary._target_ == "toxmod.stages.sweeps.SweepSummary"


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_instance_finishes_past_a_failing_point(
    tmp_path: Path, store: dict[str, str]
) -> None:
    """``hydra/launcher=ray_cluster``: each point a Ray task on a local Ray instance started for the
    sweep (and stopped with it); the failing point is reported and the others finish."""
    from tests.helpers import run_cli

    places = [*tracking_overrides(store), f"paths.multirun_dir={tmp_path / 'multirun'}"]
    ray = ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2"]
    swept = run_cli("train", "-m", *ray, *LOGREG, "model.C=1,-1,2", *places)
    assert swept.returncode == 1, swept.stderr[-2000:]
    assert "sweep: 2 done, 0 skipped, 1 failed" in swept.stdout
    assert "model.C=-1" in swept.stdout and "run the sweep again with resume=auto" in swept.stdout
    jobs = [run for run in stored_runs(store) if "sweep" not in run.data.tags]
    assert sorted(run.info.status for run in jobs) == ["FAILED", "FINISHED", "FINISHED"]
    # each point ran with the one CPU the launcher gave it (hydra.launcher.ray.remote.num_cpus)
    assert {
        run.data.params["hardware.resolved.threads"] for run in jobs if run.info.status == "FINISHED"
    } == {"1"}
