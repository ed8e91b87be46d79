"""Golden values for the named loss terms and their weighted sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toxmod.data import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models.transformer.losses import (
    AuxiliaryLoss,
    DistillationLoss,
    HardLabelLoss,
    ModelOutput,
    WeightedLoss,
)
from toxmod.models.transformer.objectives import LevelsCrossEntropy, MultiLabelBCE

pytestmark = pytest.mark.data_free

MULTI = MultiLabelScheme(["scam", "topic_crypto"], none_label="clean")


def output(logits: list[list[float]]) -> ModelOutput:
    tensor = torch.tensor(logits)
    return ModelOutput(tensor, torch.ones(len(logits), 3, dtype=torch.long))


def test_auxiliary_term_is_mean_bce_of_the_heads_after_the_schemes_outputs() -> None:
    train = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])
    auxiliary = AuxiliaryLoss.from_train(["promo", "spam"], first_output=2, targets=train, weight=0.5)
    assert auxiliary.pos_weight.tolist() == [4.0, 4.0]  # 4 negatives per positive
    # Columns 0-1 are the scheme's outputs; the term reads columns 2-3 only.
    result = auxiliary(
        output([[9.0, 9.0, 0.0, 2.0], [9.0, 9.0, 1.0, -1.0]]),
        {"auxiliary": torch.tensor([[1.0, 0.0], [0.0, 1.0]])},
    )
    # by hand: (4 log 2 + log(1 + e^2) + log(1 + e) + 4 log(1 + e)) / 4, unweighted
    expected = (4 * math.log(2) + math.log1p(math.e**2) + math.log1p(math.e) + 4 * math.log1p(math.e)) / 4
    assert result.item() == pytest.approx(expected, rel=1e-6)
    assert result.item() == pytest.approx(2.8664, abs=1e-4)
    with pytest.raises(ConfigError, match="model.auxiliary_weight=-1"):
        AuxiliaryLoss(["promo"], first_output=2, weight=-1)


def test_hard_term_reads_the_schemes_outputs_only() -> None:
    hard = HardLabelLoss(MultiLabelBCE(MULTI, np.array([3.0, 1.0])))
    batch = {"targets": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    narrow = hard(output([[0.0, 2.0], [1.0, -1.0]]), batch)
    wide = hard(output([[0.0, 2.0, 7.0], [1.0, -1.0, -7.0]]), batch)  # an auxiliary head after them
    assert narrow.item() == wide.item() == pytest.approx(1.7082, abs=1e-4)  # test_objectives' golden value


def test_weighted_sum_of_named_terms() -> None:
    levels = LevelsScheme(["safe", "toxic"])
    hard = HardLabelLoss(LevelsCrossEntropy(levels))
    auxiliary = AuxiliaryLoss(["promo"], first_output=2, weight=0.25)
    loss = WeightedLoss([hard, auxiliary])
    batch = {"targets": torch.tensor([1]), "auxiliary": torch.tensor([[1.0]])}
    total, terms = loss(output([[0.0, 0.0, 0.0]]), batch)
    # hard: cross-entropy of two equal logits = log 2; auxiliary: BCE at logit 0 = log 2
    assert terms["hard"].item() == pytest.approx(math.log(2)) and terms["auxiliary"].item() == pytest.approx(
        math.log(2)
    )
    assert total.item() == pytest.approx(1.25 * math.log(2))
    assert not loss.needs_hidden_states
    with pytest.raises(ValueError, match="unique names"):
        WeightedLoss([hard, HardLabelLoss(LevelsCrossEntropy(levels))])


def test_sigmoid_distillation_is_the_binary_kl_per_label_scaled_by_t_squared() -> None:
    # Teacher logit 0 (p = 1/2), student logit ln 3 (q = 3/4), extra output columns ignored.
    student = output([[math.log(3), 0.0, 7.0]])
    batch = {"teacher": torch.tensor([[0.0, 0.0]])}
    at_1 = DistillationLoss("multilabel", n_outputs=2, temperature=1.0)(student, batch)
    # label 1: 1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4) = 1/2 ln(4/3); label 2 matches: 0; mean over 2
    assert at_1.item() == pytest.approx(0.5 * 0.5 * math.log(4 / 3), rel=1e-6)
    at_2 = DistillationLoss("multilabel", n_outputs=2, temperature=2.0)(student, batch)
    # T = 2: q = sigmoid(ln 3 / 2) = sqrt3 / (1 + sqrt3); KL = 1/2 ln(1/4 / (q (1 - q))), times T^2 = 4
    q = math.sqrt(3) / (1 + math.sqrt(3))
    assert at_2.item() == pytest.approx(4 * 0.5 * (0.5 * math.log(0.25 / (q * (1 - q)))), rel=1e-6)
    assert at_2.item() == pytest.approx(0.0745, abs=1e-4)


def test_softmax_distillation_is_the_kl_over_levels() -> None:
    student = output([[0.0, math.log(3)], [1.0, 1.0]])  # row 2 equals its teacher: KL 0
    batch = {"teacher": torch.tensor([[0.0, 0.0], [5.0, 5.0]])}
    kd = DistillationLoss("levels", n_outputs=2, temperature=1.0)(student, batch)
    # row 1: uniform teacher vs [1/4, 3/4]: 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3); batch mean over 2 rows
    assert kd.item() == pytest.approx(0.5 * 0.5 * math.log(4 / 3), rel=1e-6)
    with pytest.raises(ConfigError, match="distill.temperature=0"):
        DistillationLoss("levels", n_outputs=2, temperature=0)


def test_alpha_weighs_the_hard_labels_against_the_teacher() -> None:
    objective = MultiLabelBCE(MULTI)
    alpha = 0.3
    loss = WeightedLoss([HardLabelLoss(objective, alpha), DistillationLoss("multilabel", 2, 1.0, 1 - alpha)])
    student = output([[math.log(3), 0.0]])
    batch = {"targets": torch.tensor([[1.0, 0.0]]), "teacher": torch.tensor([[0.0, 0.0]])}
    total, values = loss(student, batch)
    hard = (math.log1p(1 / 3) + math.log(2)) / 2  # BCE of q = 3/4 for 1, and q = 1/2 for 0
    kd = 0.5 * 0.5 * math.log(4 / 3)
    assert values["hard"].item() == pytest.approx(hard, rel=1e-6)
    assert total.item() == pytest.approx(alpha * hard + (1 - alpha) * kd, rel=1e-6)
