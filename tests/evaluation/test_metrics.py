"""Metrics checked against scikit-learn, plus golden calibration-error and bootstrap properties."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.evaluation import evaluate_predictions, expected_calibration_error

pytestmark = pytest.mark.data_free


@pytest.fixture
def multilabel_case():  # noqa: ANN201
    rng = np.random.default_rng(0)
    targets = (rng.random((400, 2)) < [0.25, 0.5]).astype(int)
    scores = np.clip(targets * 0.3 + rng.random((400, 2)) * 0.7, 0, 1)
    return MultiLabelScheme(["scam", "topic"], none_label="clean"), scores, targets, np.array([0.55, 0.6])


def test_multilabel_metrics_match_sklearn(multilabel_case) -> None:  # noqa: ANN001
    scheme, scores, targets, thresholds = multilabel_case
    metrics = evaluate_predictions(scheme, scores, targets, thresholds, bootstrap=0)
    predictions = (scores >= thresholds).astype(int)
    clean_true, clean_pred = (targets.sum(1) == 0).astype(int), (predictions.sum(1) == 0).astype(int)
    full_true, full_pred = np.c_[targets, clean_true], np.c_[predictions, clean_pred]
    precision, recall, f1, support = precision_recall_fscore_support(full_true, full_pred, zero_division=0)
    for j, name in enumerate(["scam", "topic", "clean"]):
        assert metrics[f"{name}/precision"] == pytest.approx(precision[j])
        assert metrics[f"{name}/recall"] == pytest.approx(recall[j])
        assert metrics[f"{name}/f1"] == pytest.approx(f1[j])
        assert metrics[f"{name}/support"] == support[j]
        negatives = full_true[:, j] == 0
        assert metrics[f"{name}/fpr"] == pytest.approx(full_pred[negatives, j].mean())
    for j, name in enumerate(["scam", "topic"]):
        assert metrics[f"{name}/roc_auc"] == pytest.approx(roc_auc_score(targets[:, j], scores[:, j]))
        assert metrics[f"{name}/pr_auc"] == pytest.approx(
            average_precision_score(targets[:, j], scores[:, j])
        )
    assert metrics["clean/roc_auc"] == pytest.approx(roc_auc_score(clean_true, 1 - scores.max(1)))
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(full_true, full_pred, average="macro", zero_division=0)
    )
    assert metrics["weighted_f1"] == pytest.approx(f1_score(full_true, full_pred, average="weighted"))
    assert metrics["exact_match"] == pytest.approx(accuracy_score(targets, predictions))
    assert metrics["mean_roc_auc"] == pytest.approx((metrics["scam/roc_auc"] + metrics["topic/roc_auc"]) / 2)


def test_levels_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    scheme = LevelsScheme(["neither", "offensive", "hate"])
    targets = rng.integers(0, 3, 500)
    probabilities = rng.dirichlet([1, 1, 1], 500) * 0.5 + np.eye(3)[targets] * 0.5
    thresholds = np.array([0.5, 0.45])
    metrics = evaluate_predictions(scheme, probabilities, targets, thresholds, bootstrap=0)
    predictions = scheme.predict(probabilities, thresholds)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(targets, predictions))
    assert metrics["macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(targets, predictions, average="weighted"))
    precision, recall, _, _ = precision_recall_fscore_support(targets, predictions, labels=[0, 1, 2])
    assert metrics["hate/precision"] == pytest.approx(precision[2]) and metrics[
        "hate/recall"
    ] == pytest.approx(recall[2])
    assert metrics["hate/roc_auc"] == pytest.approx(roc_auc_score(targets == 2, probabilities[:, 2]))
    flagged = probabilities[:, 1:].sum(1) >= 0.5
    assert metrics["at_least_offensive/fpr"] == pytest.approx(flagged[targets == 0].mean())


def test_expected_calibration_error_golden() -> None:
    # Two bins: [0.1, 0.1] with outcomes [0, 1] -> |0.1 - 0.5|; [0.9, 0.9] with [1, 1] -> |0.9 - 1|.
    assert expected_calibration_error(
        np.array([0.1, 0.1, 0.9, 0.9]), np.array([0, 1, 1, 1])
    ) == pytest.approx((2 * 0.4 + 2 * 0.1) / 4)
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.0)


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded(multilabel_case) -> None:  # noqa: ANN001
    scheme, scores, targets, thresholds = multilabel_case
    first = evaluate_predictions(scheme, scores, targets, thresholds, bootstrap=300, seed=4)
    second = evaluate_predictions(scheme, scores, targets, thresholds, bootstrap=300, seed=4)
    assert first == second
    for name in ("macro_f1", "exact_match", "scam/recall", "scam/fpr"):
        assert first[f"{name}_ci_low"] <= first[name] <= first[f"{name}_ci_high"]
        assert first[f"{name}_ci_high"] - first[f"{name}_ci_low"] > 0


def test_latency_harness_measures_any_scorer() -> None:
    from toxmod.evaluation.latency import measure_throughput
    from toxmod.models.base import Scorer

    class Constant(Scorer):
        kind = "constant"

        def fit(self, texts, targets, scheme):  # noqa: ANN001, ANN201
            return self

        def predict_scores(self, texts):  # noqa: ANN001, ANN201
            time.sleep(0.001 * len(texts))
            return np.zeros((len(texts), 1))

        def _save_weights(self, directory):  # noqa: ANN001, ANN202
            pass

        def _load_weights(self, directory):  # noqa: ANN001, ANN202
            pass

    result = measure_throughput(Constant(), ["x"] * 20, batch_size=5, repeats=3)
    assert result.n_texts == 20 and result.repeats == 3
    # sleep() gives lower bounds on time: at least 5 ms a batch of 5, so at most 1000 texts/s.
    assert 0 < result.median_texts_per_second <= 1000
    assert result.median_batch_ms >= 5.0
