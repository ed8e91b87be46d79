"""Thresholds: golden target-FPR cuts (worked by hand) and the Optuna search with its FPR budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.thresholds import OptunaThresholds, TargetFPRThresholds, Thresholds, threshold_at_fpr

pytestmark = pytest.mark.data_free


def test_threshold_at_fpr_golden_values() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.8, 0.3, 0.1, 0.85, 0.7, 0.2, 0.05, 0.6, 0.4])
    positive = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
    # 9 negatives sorted: .95 .9 .8 .8 .6 .4 .3 .1 .05; target 0.25 -> floor(2.25) = 2 may be flagged.
    threshold, info = threshold_at_fpr(scores, positive, 0.25)
    assert threshold == np.nextafter(0.8, np.inf)
    assert info["fit_fpr"] == pytest.approx(2 / 9) and info["fit_recall"] == pytest.approx(1 / 3)
    assert info["fpr_granularity"] == pytest.approx(1 / 9) and info["n_negatives"] == 9
    # Ties: target 1/3 allows 3, but the 3rd and 4th negatives tie at 0.8, so only 2 can be flagged.
    threshold, info = threshold_at_fpr(scores, positive, 1 / 3)
    assert threshold == np.nextafter(0.8, np.inf) and info["fit_fpr"] == pytest.approx(2 / 9)
    # Target 0: above the highest negative.
    threshold, info = threshold_at_fpr(scores, positive, 0.0)
    assert threshold == np.nextafter(0.95, np.inf) and info["fit_fpr"] == 0.0
    # Target 0.5 -> 4 allowed -> just above the 5th negative (0.6): 0.7 (positive) is flagged.
    threshold, info = threshold_at_fpr(scores, positive, 0.5)
    assert threshold == np.nextafter(0.6, np.inf) and info["fit_recall"] == pytest.approx(2 / 3)


def test_threshold_is_the_lowest_that_meets_the_target() -> None:
    rng = np.random.default_rng(0)
    scores, positive = rng.random(500), rng.random(500) < 0.3
    for target in (0.01, 0.02, 0.05, 0.2):
        threshold, info = threshold_at_fpr(scores, positive, target)
        assert info["fit_fpr"] <= target
        lower = np.nextafter(threshold, -np.inf)
        assert (scores[~positive] >= lower).mean() > target


def test_target_fpr_per_label_overrides_and_levels() -> None:
    rng = np.random.default_rng(1)
    scheme = MultiLabelScheme(["a", "b"])
    scores, targets = rng.random((400, 2)), (rng.random((400, 2)) < 0.4).astype(int)
    fitted = TargetFPRThresholds(0.02, per_label={"b": 0.1}).fit(scheme, scores, targets)
    assert fitted.details["a"]["target_fpr"] == 0.02 and fitted.details["b"]["target_fpr"] == 0.1
    assert fitted.details["b"]["fit_fpr"] <= 0.1 and fitted.values[1] < fitted.values[0]
    levels = LevelsScheme(["safe", "mild", "severe"])
    probabilities = rng.dirichlet([1, 1, 1], size=300)
    level_fit = TargetFPRThresholds(0.05).fit(levels, probabilities, rng.integers(0, 3, 300))
    assert level_fit.names == ["at_least_mild", "at_least_severe"]
    assert all(d["fit_fpr"] <= 0.05 for d in level_fit.details.values())


def test_thresholds_save_and_load(tmp_path: Path) -> None:
    thresholds = Thresholds(["a"], [0.123456789], "target_fpr", "calib", {"a": {"fit_fpr": 0.01}})
    thresholds.save(tmp_path / "t.json")
    assert Thresholds.load(tmp_path / "t.json") == thresholds


def test_optuna_search_respects_the_budget_and_resumes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    scheme = MultiLabelScheme(["a", "b"], none_label="none")
    targets = (rng.random((300, 2)) < 0.3).astype(int)
    scores = np.clip(targets * 0.35 + rng.random((300, 2)) * 0.65, 0, 1)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = OptunaThresholds(n_trials=30, target_fpr=0.05, storage=storage, seed=0)
    fitted = search.fit(scheme, scores, targets)
    baseline = TargetFPRThresholds(0.05).fit(scheme, scores, targets)
    assert all(fitted.details[n]["fit_fpr"] <= 0.05 for n in scheme.decision_names)
    assert fitted.details["_study"]["trials"] == 30
    assert fitted.details["_study"]["best_value"] >= search._objective_value(
        scheme, scores, targets, baseline.as_array()
    )
    # Same inputs, same storage: the study is found again and no trial is repeated.
    again = OptunaThresholds(n_trials=30, target_fpr=0.05, storage=storage, seed=0).fit(
        scheme, scores, targets
    )
    assert again.details["_study"]["trials"] == 30 and again.values == fitted.values
    more = OptunaThresholds(n_trials=40, target_fpr=0.05, storage=storage, seed=0).fit(
        scheme, scores, targets
    )
    assert more.details["_study"]["trials"] == 40
