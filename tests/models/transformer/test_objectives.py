"""Golden values for the training objectives and label weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toxmod.data import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models.transformer.objectives import (
    LevelsCrossEntropy,
    MultiLabelBCE,
    objective_for,
    resolve_label_weights,
)

pytestmark = pytest.mark.data_free

MULTI = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")
LEVELS = LevelsScheme(["neither", "offensive", "hate"])


def test_bce_with_pos_weight_matches_hand_computation() -> None:
    objective = MultiLabelBCE(MULTI, np.array([3.0, 1.0]))
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    expected = (
        -3.0 * log_sigmoid(0.0)  # positive, weight 3
        - log_sigmoid(-2.0)  # negative: log(1 - sigmoid(2)) = log_sigmoid(-2)
        - log_sigmoid(-1.0)  # negative
        - log_sigmoid(-1.0)  # positive, logit -1
    ) / 4
    assert objective.loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert objective.loss(logits, targets).item() == pytest.approx(1.7082, abs=1e-4)
    assert objective.scores(logits).numpy() == pytest.approx(1 / (1 + np.exp(-logits.numpy())))


def test_weighted_cross_entropy_matches_hand_computation() -> None:
    objective = LevelsCrossEntropy(LEVELS, np.array([1.0, 2.0, 4.0]))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    targets = torch.tensor([0, 2])
    nll_0 = -math.log(math.exp(2) / (math.exp(2) + 2))
    nll_1 = -math.log(math.e / (math.e + 2))
    expected = (1.0 * nll_0 + 4.0 * nll_1) / (1.0 + 4.0)  # torch's weighted mean
    assert objective.loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert objective.scores(logits).sum(dim=1).numpy() == pytest.approx([1.0, 1.0])


def test_auto_weights_follow_train_support() -> None:
    multi_targets = np.array([[1, 0], [0, 0], [0, 1], [0, 1], [0, 0]])
    assert MultiLabelBCE.auto_weights(MULTI, multi_targets) == pytest.approx([4.0, 1.5])
    level_targets = np.array([0, 0, 0, 0, 1, 1, 2, 0])
    # n / (K * count): 8 / (3 * [5, 2, 1])
    assert LevelsCrossEntropy.auto_weights(LEVELS, level_targets) == pytest.approx([8 / 15, 4 / 3, 8 / 3])


def test_explicit_weights_by_name_or_list_and_bad_specs() -> None:
    targets = np.zeros((4, 2))
    assert resolve_label_weights({"scam": 5}, MultiLabelBCE, MULTI, targets) == pytest.approx([5.0, 1.0])
    assert resolve_label_weights([2, 3], MultiLabelBCE, MULTI, targets) == pytest.approx([2.0, 3.0])
    assert resolve_label_weights("none", MultiLabelBCE, MULTI, targets) is None
    with pytest.raises(ConfigError, match="unknown outputs"):
        resolve_label_weights({"spam": 2}, MultiLabelBCE, MULTI, targets)
    with pytest.raises(ConfigError, match="has 3 values"):
        resolve_label_weights([1, 2, 3], MultiLabelBCE, MULTI, targets)
    with pytest.raises(ConfigError, match="label_weights='balanced'"):
        resolve_label_weights("balanced", MultiLabelBCE, MULTI, targets)


def test_the_scheme_picks_the_objective() -> None:
    assert isinstance(objective_for(MULTI, None, np.zeros((2, 2))), MultiLabelBCE)
    assert isinstance(objective_for(LEVELS, "auto", np.array([0, 1, 2])), LevelsCrossEntropy)
