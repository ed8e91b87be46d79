"""End to end: `toxmod.train` on real janitr and davidson slices, recorded in a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY_XGBOOST, compose_train, run_cli, stored_runs, tracking_overrides
from toxmod.errors import ConfigError
from toxmod.evaluate import evaluate_run
from toxmod.train import train

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
            "threshold.n_trials=25",
            f"threshold.storage=sqlite:///{tmp_path / 'optuna.db'}",
            *tracking_overrides(store),
        ]
    )
    result = train(cfg, tmp_path / "run")
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())
    assert thresholds["method"] == "optuna" and thresholds["details"]["_study"]["trials"] == 25
    assert result.metrics["calib/scam/fpr"] <= 0.02


def test_a_failure_inside_the_run_marks_it_failed(tmp_path: Path, store: dict[str, str]) -> None:
    cfg = compose_train(
        [
            *JANITR_SLICE,
            "model=tfidf_logreg",
            "model.max_features=5000",
            "threshold.per_label={not_a_label: 0.1}",
            *tracking_overrides(store),
        ]
    )
    with pytest.raises(ConfigError, match="threshold.per_label names"):
        train(cfg, tmp_path / "run")
    assert [r.info.status for r in stored_runs(store)] == ["FAILED"]
    assert (tmp_path / "run" / "FAILED").is_file() and not (tmp_path / "run" / "holdout_eval.json").exists()


def test_thresholds_are_never_fit_on_the_holdout(tmp_path: Path) -> None:
    cfg = compose_train([*JANITR_SLICE, "threshold.fit_split=holdout", "tracking=none"])
    with pytest.raises(ConfigError, match="never on the holdout"):
        train(cfg, tmp_path / "run")


@pytest.mark.slow
def test_cli_train_evaluate_compare_and_frozen_split(tmp_path: Path, store: dict[str, str]) -> None:
    tracking = tracking_overrides(store)
    common = [*JANITR_SLICE, "model=tfidf_logreg", "model.max_features=20000", "bootstrap=50", *tracking]
    first = run_cli("train", *common, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr
    run_id = MlflowClient(store["uri"]).search_runs(["1"])[0].info.run_id

    evaluated = run_cli("evaluate", f"run={run_id}", *tracking, f"paths.output_dir={tmp_path / 'out'}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "reproduced: max |difference| from holdout_eval.json = 0" in evaluated.stdout

    # Freeze a stratified split of the same slice and train on it: a different split hash.
    folder = tmp_path / "frozen"
    frozen = run_cli("split", *JANITR_SLICE, f"out={folder}", "split.seed=5")
    assert frozen.returncode == 0, frozen.stderr
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    second = run_cli(
        "train", *common, "split=frozen", f"split.dir={folder}", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert second.returncode == 0, second.stderr
    client = MlflowClient(store["uri"])
    hashes = {r.info.run_id: r.data.tags["split_sha256"] for r in client.search_runs(["1"])}
    assert manifest["split_sha256"] in hashes.values() and len(set(hashes.values())) == 2

    shown = run_cli("compare", *tracking)
    assert shown.returncode == 0 and "left out 1 run(s) on another split" in shown.stdout
    refused = run_cli("compare", *tracking, f"runs=[{','.join(hashes)}]")
    assert (
        refused.returncode == 2 and "refusing to compare runs evaluated on different splits" in refused.stderr
    )
    mixed = run_cli("compare", *tracking, "allow_mixed_splits=true")
    assert mixed.returncode == 0 and "MIXED" in mixed.stdout
