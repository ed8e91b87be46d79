"""Golden values for the named loss terms and their weighted sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toxmod.data import LevelsScheme, MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models.transformer.losses import AuxiliaryLoss, HardLabelLoss, ModelOutput, WeightedLoss
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
