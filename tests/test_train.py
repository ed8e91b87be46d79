"""End to end: `toxmod.train` on real janitr and davidson slices, recorded in a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY_XGBOOST, compose_train, run_entry, stored_runs, tracking_overrides
from toxmod.errors import ConfigError
from toxmod.stages.evaluate import evaluate_run
from toxmod.stages.train import train

JANITR_SLICE = ["data=janitr", "data.max_rows=1500"]


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.slow
def test_janitr_run_is_fully_recorded(tmp_path: Path, store: dict[str, str]) -> None:
    cfg = compose_train([*JANITR_SLICE, *TINY_XGBOOST, *tracking_overrides(store)])
    result = train(cfg, tmp_path / "run")
    client = MlflowClient(store["uri"])
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in (
        "holdout/scam/recall",
        "holdout/scam/fpr",
        "holdout/macro_f1",
        "holdout/exact_match",
        "holdout/clean/f1",
        "holdout/macro_f1_ci_low",
        "holdout/ece",
        "calib/scam/fpr",
        "train_seconds",
    ):
        assert name in metrics, name
    # Thresholds were chosen on calib at FPR <= 0.02, and the calib FPR shows it.
    assert metrics["calib/scam/fpr"] <= 0.02 and metrics["calib/topic_crypto/fpr"] <= 0.02
    assert 0.0 < metrics["holdout/scam/recall"] <= 1.0 and metrics["holdout/macro_f1"] > 0.5
    tags = run.data.tags
    assert len(tags["split_sha256"]) == 64 and len(tags["data_sha256"]) == 64 and tags["git_sha"]
    assert run.data.params["model.n_estimators"] == "20" and run.data.params["data.name"] == "janitr"
    artifacts = artifact_paths(client, result.run_id)
    assert {
        "model/scorer.json",
        "thresholds.json",
        "holdout_eval.json",
        "config.yaml",
        "split/MANIFEST.json",
        "split/holdout.ids.txt",
        "leakage.json",
    } <= artifacts

    record = json.loads((result.run_dir / "holdout_eval.json").read_text())
    assert record["split_sha256"] == tags["split_sha256"] and record["data_sha256"] == tags["data_sha256"]
    assert record["model"] == "tfidf_xgboost" and set(record["thresholds"]) == {"scam", "topic_crypto"}
    assert record["metrics"]["scam/recall"] == pytest.approx(metrics["holdout/scam/recall"])
    assert record["metrics"]["macro_f1"] == pytest.approx(metrics["holdout/macro_f1"])

    evaluation = evaluate_run(result.run_dir)
    assert evaluation.reproduced and evaluation.max_difference == 0.0
    calib = evaluate_run(result.run_dir, "calib")
    assert calib.reproduced and calib.metrics["calib/scam/fpr"] == pytest.approx(metrics["calib/scam/fpr"])


@pytest.mark.slow
def test_davidson_levels_run(tmp_path: Path, store: dict[str, str]) -> None:
    cfg = compose_train(
        [
            "data=davidson",
            "data.max_rows=3000",
            "split=stratified",
            "model=tfidf_logreg",
            "model.max_features=20000",
            *tracking_overrides(store),
        ]
    )
    result = train(cfg, tmp_path / "run")
    metrics = MlflowClient(store["uri"]).get_run(result.run_id).data.metrics
    for name in (
        "holdout/accuracy",
        "holdout/macro_f1",
        "holdout/weighted_f1",
        "holdout/hate/recall",
        "holdout/at_least_offensive/fpr",
        "holdout/accuracy_ci_low",
        "calib/at_least_hate/fpr",
    ):
        assert name in metrics, name
    assert metrics["calib/at_least_offensive/fpr"] <= 0.02
    assert metrics["holdout/accuracy"] > 0.5


@pytest.mark.slow
def test_optuna_thresholds_in_a_run(tmp_path: Path, store: dict[str, str]) -> None:
    cfg = compose_train(
        [
            *JANITR_SLICE,
            "model=tfidf_logreg",
            "model.max_features=20000",
            "threshold=optuna",
            "threshold.n_trials=10",
            f"threshold.storage=sqlite:///{tmp_path / 'optuna.db'}",
            *tracking_overrides(store),
        ]
    )
    result = train(cfg, tmp_path / "run")
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())
    assert thresholds["method"] == "optuna" and thresholds["details"]["_study"]["trials"] == 10
    assert result.metrics["calib/scam/fpr"] <= 0.02


def test_a_failure_inside_the_run_marks_it_failed(tmp_path: Path, store: dict[str, str]) -> None:
    # A vocabulary pruned below its own limits fails inside fit, after the tracking run has started.
    cfg = compose_train(
        [*JANITR_SLICE, "model=tfidf_logreg", "model.min_df=100000", *tracking_overrides(store)]
    )
    with pytest.raises(ValueError, match="max_df corresponds to < documents than min_df"):
        train(cfg, tmp_path / "run")
    assert [r.info.status for r in stored_runs(store)] == ["FAILED"]
    assert (tmp_path / "run" / "FAILED").is_file() and not (tmp_path / "run" / "holdout_eval.json").exists()


def test_config_errors_come_before_any_data_or_tracking_run(tmp_path: Path) -> None:
    store = {"uri": f"sqlite:///{tmp_path / 'untouched.db'}", "artifact_root": str(tmp_path / "artifacts")}
    cfg = compose_train(
        [
            "data=csv",
            f"data.path={tmp_path / 'not-read.csv'}",  # would be a data error, were the file read
            "data.label_columns=[scam]",
            "threshold.per_label={not_a_label: 0.1}",
            *tracking_overrides(store),
        ]
    )
    with pytest.raises(ConfigError, match=r"threshold.per_label names \['not_a_label'\]"):
        train(cfg, tmp_path / "run")
    assert not Path(store["uri"].removeprefix("sqlite:///")).exists()  # no tracking store was opened
    assert not (tmp_path / "run").exists()


def test_thresholds_are_never_fit_on_the_holdout(tmp_path: Path) -> None:
    cfg = compose_train([*JANITR_SLICE, "threshold.fit_split=holdout", "tracking=none"])
    with pytest.raises(ConfigError, match="never on the holdout"):
        train(cfg, tmp_path / "run")


@pytest.mark.slow
def test_cli_train_evaluate_compare_and_frozen_split(tmp_path: Path, store: dict[str, str]) -> None:
    tracking = tracking_overrides(store)
    common = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=20000", "bootstrap=50", *tracking]
    first = run_entry("train", *common, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr
    [run] = stored_runs(store)

    evaluated = run_entry(
        "evaluate", f"run={run.info.run_id}", *tracking, f"paths.output_dir={tmp_path / 'out'}"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "reproduced: max |difference| from holdout_eval.json = 0" in evaluated.stdout

    # Freeze a stratified split of the same slice and train on it: a different split hash.
    folder = tmp_path / "frozen"
    frozen = run_entry("split", *JANITR_SLICE, f"out={folder}", "split.seed=5")
    assert frozen.returncode == 0, frozen.stderr
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    second = run_entry(
        "train", *common, "split=frozen", f"split.dir={folder}", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert second.returncode == 0, second.stderr
    hashes = {r.info.run_id: r.data.tags["split_sha256"] for r in stored_runs(store)}
    assert manifest["split_sha256"] in hashes.values() and len(set(hashes.values())) == 2

    shown = run_entry("compare", *tracking)
    assert shown.returncode == 0 and "left out 1 run(s) on another split" in shown.stdout
    refused = run_entry("compare", *tracking, f"runs=[{','.join(hashes)}]")
    assert (
        refused.returncode == 2 and "refusing to compare runs evaluated on different splits" in refused.stderr
    )
    mixed = run_entry("compare", *tracking, "allow_mixed_splits=true")
    assert mixed.returncode == 0 and "MIXED" in mixed.stdout


@pytest.mark.slow
def test_resume_auto_skips_a_finished_classical_job(tmp_path: Path, store: dict[str, str]) -> None:
    outputs = [f"paths.output_dir={tmp_path / 'outputs'}", f"paths.multirun_dir={tmp_path / 'multirun'}"]
    job = [
        "data=janitr",
        "data.max_rows=600",
        "model=tfidf_logreg",
        "model.max_features=5000",
        *outputs,
        *tracking_overrides(store),
    ]
    first = train(compose_train([*job, "resume=auto"]), tmp_path / "outputs" / "train" / "a")
    again = train(compose_train([*job, "resume=auto"]), tmp_path / "outputs" / "train" / "b")
    assert again.skipped and again.run_dir == first.run_dir and again.run_id == first.run_id
    assert again.metrics == json.loads((first.run_dir / "metrics.json").read_text())
    assert len(stored_runs(store)) == 1 and not (tmp_path / "outputs" / "train" / "b").exists()
    other_job = train(
        compose_train([*job, "model.C=1.0", "resume=auto"]), tmp_path / "outputs" / "train" / "c"
    )
    assert not other_job.skipped and len(stored_runs(store)) == 2
