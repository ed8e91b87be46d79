"""Chance-level warnings: flat scores, ranking no better than a coin, predictions collapsed to one answer."""

from __future__ import annotations

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.evaluation.sanity import chance_warnings

pytestmark = pytest.mark.data_free
LABELS = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")


def test_a_useful_model_gets_no_warning() -> None:
    targets = np.array([[1, 0], [0, 1], [0, 0], [1, 1]] * 25)
    scores = np.clip(targets * 0.8 + np.linspace(0.05, 0.15, 100)[:, None], 0, 1)
    predictions = (scores >= 0.5).astype(int)
    assert chance_warnings(LABELS, scores, targets, predictions, "holdout") == []


def test_flat_chance_and_collapsed_models_are_named() -> None:
    rng = np.random.default_rng(0)
    targets = np.array([[1, 0], [0, 1], [0, 0], [1, 1]] * 25)
    scores = np.column_stack([np.full(100, 0.3) + rng.normal(0, 1e-5, 100), rng.random(100)])
    predictions = np.zeros((100, 2), dtype=int)
    found = chance_warnings(LABELS, scores, targets, predictions, "holdout")
    assert found[0].startswith("holdout scores of scam barely vary (std ")
    assert found[1].startswith("holdout ROC-AUC of topic_crypto is 0.") and found[1].endswith(
        "no better than chance"
    )
    assert found[2] == "holdout predictions collapse to one answer (clean) for 100.0% of texts"


def test_levels_warn_per_cumulative_decision() -> None:
    scheme = LevelsScheme(["safe", "mild", "toxic"])
    targets = np.array([0, 1, 2, 0] * 30)
    scores = np.tile([0.5, 0.3, 0.2], (120, 1))
    found = chance_warnings(scheme, scores, targets, np.zeros(120, dtype=int), "calib")
    assert [line.split(" barely")[0] for line in found[:2]] == [
        "calib scores of at_least_mild",
        "calib scores of at_least_toxic",
    ]
    assert found[2] == "calib predictions collapse to one answer (safe) for 100.0% of texts"
