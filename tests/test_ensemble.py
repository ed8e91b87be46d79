"""``model=ensemble``: finished runs combined as calibrated logits (or stacked), recorded like any run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import JANITR_SLICE, compose_train, stored_runs, tracking_overrides
from toxmod.errors import ConfigError
from toxmod.models import load_scorer
from toxmod.stages.evaluate import evaluate_run
from toxmod.stages.train import TrainResult, train

LOGREG = ["model=tfidf_logreg", "model.max_features=3000", "tracking=none", "bootstrap=0"]
XGBOOST = ["model=tfidf_xgboost", "model.n_estimators=20", "model.linear_folds=2", "model.max_features=3000"]


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[TrainResult]:
    root = tmp_path_factory.mktemp("members")
    return [
        train(compose_train([*JANITR_SLICE, *LOGREG, "model.C=0.5"]), root / "logreg"),
        train(compose_train([*JANITR_SLICE, *XGBOOST, *LOGREG[2:]]), root / "xgboost"),
    ]


def ensemble(members: list[TrainResult], tmp_path: Path, *extra: str) -> list[str]:
    refs = ",".join(str(m.run_dir) for m in members)
    return [*JANITR_SLICE, "model=ensemble", f"model.members=[{refs}]", *LOGREG[2:], *extra]


@pytest.mark.parametrize("combine", ["mean", "stack"])
def test_an_ensemble_of_runs_is_a_run_like_any_other(
    members: list[TrainResult], tmp_path: Path, combine: str
) -> None:
    result = train(compose_train(ensemble(members, tmp_path, f"model.combine={combine}")), tmp_path / "run")
    model = load_scorer(result.run_dir / "model")  # the members travel inside the ensemble's folder
    assert model.kind == "ensemble" and [m.kind for m in model.members] == ["tfidf_logreg", "tfidf_xgboost"]
    assert len(model.temperatures) == 2 and all(t.values[0] > 0 for t in model.temperatures)
    scores = model.predict_scores(["free crypto airdrop, claim now", "hello"])
    assert scores.shape == (2, 2) and np.all((scores >= 0) & (scores <= 1))
    evaluation = evaluate_run(result.run_dir)
    assert evaluation.reproduced and evaluation.max_difference == 0.0
    # Calibrated logits are combined: the ensemble ranks the holdout better than its weaker member.
    auc = [m.metrics["holdout/mean_roc_auc"] for m in members]
    assert result.metrics["holdout/mean_roc_auc"] > min(auc)


def test_members_on_another_split_are_refused(members: list[TrainResult], tmp_path: Path) -> None:
    other = train(compose_train(["data=janitr", "data.max_rows=500", *LOGREG]), tmp_path / "other")
    overrides = ensemble([members[0], other], tmp_path)
    with pytest.raises(ConfigError, match=r"model.members=.*other: that run was trained on split \w{12}"):
        train(compose_train(overrides), tmp_path / "run")


def test_an_ensemble_needs_two_members_before_any_data(tmp_path: Path) -> None:
    overrides = ["data=csv", f"data.path={tmp_path / 'never-read.csv'}", "data.label_columns=[scam]"]
    with pytest.raises(ConfigError, match=r"an ensemble needs at least two finished runs"):
        train(
            compose_train([*overrides, "model=ensemble", f"model.members=[{tmp_path}]", "tracking=none"]),
            tmp_path / "r",
        )
    assert not (tmp_path / "r").exists()


def test_temperature_calibration_of_a_single_run(members: list[TrainResult], tmp_path: Path) -> None:
    """calibration=temperature: same rankings and decisions, probabilities fitted to valid."""
    plain = members[0]  # the same tfidf_logreg without calibration
    overrides = [*JANITR_SLICE, *LOGREG, "model.C=0.5", "calibration=temperature"]
    result = train(compose_train(overrides), tmp_path / "run")
    metrics = result.metrics
    assert metrics["valid/ece_after_calibration"] < metrics["valid/ece_before_calibration"]
    assert metrics["valid/ece_before_calibration"] == pytest.approx(plain.metrics["valid/ece"])
    assert metrics["valid/ece_after_calibration"] == pytest.approx(metrics["valid/ece"])
    for name in ("holdout/mean_roc_auc", "holdout/scam/recall", "holdout/scam/fpr"):
        assert metrics[name] == pytest.approx(plain.metrics[name], abs=1e-9)  # per-label T keeps the order
    saved = json.loads((result.run_dir / "calibration.json").read_text())
    assert set(saved["temperatures"]) == {"scam", "topic_crypto"} and saved["fit_split"] == "valid"
    model = load_scorer(result.run_dir / "model")
    assert model.kind == "temperature_scaled" and model.inner.kind == "tfidf_logreg"
    evaluation = evaluate_run(result.run_dir)
    assert evaluation.reproduced and evaluation.max_difference == 0.0


def test_teacher_seeds_train_the_members_once(tmp_path: Path, store: dict[str, str]) -> None:
    """teacher.seeds trains a member per seed and ensembles them; a relaunch reuses the members."""
    overrides = [
        *JANITR_SLICE,
        "model=ensemble",
        "teacher.member=student",
        "teacher.member_choices={student: tiny}",
        "teacher.seeds=[1,2]",
        "+teacher.model_overrides={max_epochs: 1, max_length: 48, batch_size: 16}",
        "hardware.num_workers=0",
        "bootstrap=0",
        f"paths.output_dir={tmp_path}",  # where resume=auto looks for finished members
        f"paths.multirun_dir={tmp_path / 'multirun'}",
        *tracking_overrides(store),
    ]
    first = train(compose_train(overrides), tmp_path / "first")
    runs = stored_runs(store)
    assert sorted(r.data.tags["model"] for r in runs) == ["ensemble", "student", "student"]
    members = [r for r in runs if r.data.tags["model"] == "student"]
    assert sorted(r.data.params["seed"] for r in members) == ["1", "2"]
    model = load_scorer(first.run_dir / "model")
    assert model.neural_models == 2 and model.member_refs == sorted(
        model.member_refs, key=model.member_refs.index
    )
    second = train(compose_train(overrides), tmp_path / "second")
    assert len(stored_runs(store)) == 4  # one more ensemble; its members were reused, not retrained
    assert second.metrics["holdout/mean_roc_auc"] == first.metrics["holdout/mean_roc_auc"]
