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
    HiddenStateLoss,
    ModelOutput,
    WeightedLoss,
    checked_layer_map,
    masked_mean,
    uniform_layer_map,
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


def test_masked_mean_ignores_padding() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert masked_mean(states, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def hidden_output() -> ModelOutput:
    """One text of two tokens; embeddings and two layers of width 2; layer 2's second token is padding."""
    embeddings = torch.zeros(1, 2, 2)
    layer_1 = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])  # mean over both tokens: [2, 1]
    layer_2 = torch.tensor([[[0.0, 2.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 0]])  # layer means use the first token only
    return ModelOutput(torch.zeros(1, 2), mask, (embeddings, layer_1, layer_2))


def test_hidden_state_term_golden_mse_and_cosine() -> None:
    # Teacher layers 2 and 4 were cached (columns 0 and 1); student 1 -> teacher 2, student 2 -> teacher 4.
    pairs, cached = [(1, 2), (2, 4)], (2, 4)
    output = hidden_output()
    output = ModelOutput(output.logits, torch.tensor([[1, 1]]), output.hidden_states)
    teacher = {"teacher_hidden": torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])}
    mse = HiddenStateLoss(pairs, cached, 2, 2, "mse")
    # layer 1 mean [2, 1] vs [1, 1]: (1 + 0) / 2 = 0.5; layer 2 mean [4.5, 5.5] vs [0, 0]: (20.25 + 30.25) / 2
    assert float(mse(output, teacher)) == pytest.approx((0.5 + 25.25) / 2)
    masked = hidden_output()  # second token padded: layer 1 mean [1, 0], layer 2 mean [0, 2]
    assert float(mse(masked, teacher)) == pytest.approx(((0 + 1) / 2 + (0 + 4) / 2) / 2)
    cosine = HiddenStateLoss(pairs, cached, 2, 2, "cosine", weight=0.3)
    teacher_cos = {"teacher_hidden": torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])}
    # [1, 0] vs [1, 1]: 1 - 1/sqrt(2); [0, 2] vs [1, 0]: 1 - 0
    assert float(cosine(masked, teacher_cos)) == pytest.approx((1 - 1 / math.sqrt(2) + 1.0) / 2)
    assert cosine.weight == 0.3 and isinstance(cosine.projection, torch.nn.Identity)


def test_hidden_state_term_learns_a_projection_when_widths_differ() -> None:
    term = HiddenStateLoss([(1, 1)], (1,), student_width=2, teacher_width=3)
    assert isinstance(term.projection, torch.nn.Linear) and term.projection.weight.shape == (3, 2)
    loss = WeightedLoss([term])
    assert loss.needs_hidden_states and loss.modules() == [term.projection]
    value = term(hidden_output(), {"teacher_hidden": torch.zeros(1, 1, 3)})
    value.backward()
    assert term.projection.weight.grad is not None  # trained with the student


@pytest.mark.parametrize(
    ("student", "teacher", "expected"),
    [
        (4, 6, [(1, 1), (2, 3), (3, 4), (4, 6)]),  # shallower: skips teacher layers
        (2, 12, [(1, 6), (2, 12)]),
        (1, 6, [(1, 6)]),
        (6, 6, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)]),
        (8, 6, [(1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4), (7, 5), (8, 6)]),  # deeper: shares them
        (3, 2, [(1, 1), (2, 1), (3, 2)]),
    ],
)
def test_uniform_layer_map_for_any_depth(student: int, teacher: int, expected: list) -> None:
    assert uniform_layer_map(student, range(1, teacher + 1)) == expected


def test_explicit_layer_map_is_checked_against_both_depths() -> None:
    assert checked_layer_map([[1, 2], [2, 4]], 2, [2, 4]) == [(1, 2), (2, 4)]
    assert checked_layer_map({0: 0, 1: 4}, 1, [0, 4]) == [(0, 0), (1, 4)]
    assert checked_layer_map(None, 2, [1, 2, 3, 4]) == [(1, 2), (2, 4)]
    with pytest.raises(ConfigError, match="student layer 3 does not exist .the student has 2 layers"):
        checked_layer_map([[3, 2]], 2, [2, 4])
    with pytest.raises(
        ConfigError, match=r"teacher layer 5 is not among the teacher's cached layers \[2, 4\]"
    ):
        checked_layer_map([[1, 5]], 2, [2, 4])


def test_unlabelled_transfer_rows_count_only_in_the_teacher_terms() -> None:
    hard = HardLabelLoss(MultiLabelBCE(MULTI))
    logits = [[0.0, 0.0], [5.0, -5.0]]
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    labelled_only = hard(output(logits[:1]), {"targets": targets[:1]})
    marked = {"targets": targets, "labelled": torch.tensor([True, False])}
    assert float(hard(output(logits), marked)) == pytest.approx(float(labelled_only))
    assert float(labelled_only) == pytest.approx(math.log(2))
    none = {"targets": targets, "labelled": torch.tensor([False, False])}
    assert float(hard(output(logits), none)) == 0.0


def test_loss_terms_by_name_with_their_default_and_given_weights() -> None:
    from types import SimpleNamespace

    from toxmod.models.base import TeacherTargets
    from toxmod.models.transformer.loss_terms import LOSS_TERMS, LossInputs, build_loss

    objective = MultiLabelBCE(MULTI, None)
    config = SimpleNamespace(num_hidden_layers=2, hidden_size=4)
    alone = build_loss(LossInputs(MULTI, objective, config), None)
    assert [(t.name, t.weight) for t in alone.terms] == [("hard", 1.0)]  # no teacher, no tags
    teacher = TeacherTargets(np.zeros((2, 2)), temperature=2.0, alpha=0.25)
    inputs = LossInputs(MULTI, objective, config, teacher)
    assert [(t.name, t.weight) for t in build_loss(inputs, None).terms] == [("hard", 0.25), ("kd", 0.75)]
    chosen = build_loss(inputs, {"kd": 1.0, "hard": None})  # the given order and weights; null: default
    assert [(t.name, t.weight) for t in chosen.terms] == [("kd", 1.0), ("hard", 0.25)]
    batch = {"targets": torch.tensor([[1.0, 0.0]]), "teacher": torch.tensor([[0.0, 0.0]])}
    total, values = chosen(output([[2.0, -1.0]]), batch)
    assert float(total) == pytest.approx(1.0 * float(values["kd"]) + 0.25 * float(values["hard"]))
    with pytest.raises(ConfigError, match="model.loss_terms.kd: this run has no inputs"):
        build_loss(LossInputs(MULTI, objective, config), {"kd": 1.0})
    with pytest.raises(ConfigError, match="model.loss_terms.ce: no such loss term; terms are"):
        build_loss(inputs, {"ce": 1.0})
    assert set(LOSS_TERMS) == {"hard", "kd", "hidden", "auxiliary"}
