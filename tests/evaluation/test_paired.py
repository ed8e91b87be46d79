"""The paired bootstrap on constructed pairs whose differences are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from toxmod.data.schemes import LevelsScheme, MultiLabelScheme
from toxmod.evaluation import evaluate_predictions
from toxmod.evaluation.paired import paired_bootstrap

pytestmark = pytest.mark.data_free

SCHEME = MultiLabelScheme(labels=["scam", "topic"], primary_label="scam")


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 rows, 100 scam positives. A flags 80 of them, B flags 60 of those 80; both flag the same
    2 negatives. The topic label is scored identically by both. So scam recall is 0.8 vs 0.6."""
    targets = np.zeros((200, 2), dtype=int)
    targets[:100, 0] = 1
    targets[::2, 1] = 1
    a = np.zeros((200, 2))
    a[:80, 0] = 0.9
    a[100:102, 0] = 0.9
    b = a.copy()
    b[60:80, 0] = 0.1
    a[:, 1] = b[:, 1] = np.where(targets[:, 1] == 1, 0.7, 0.3)
    return targets, a, b


def test_a_known_recall_difference_is_found_with_its_interval_and_p_value() -> None:
    targets, a, b = _pair()
    cut = np.array([0.5, 0.5])
    results = {r.metric: r for r in paired_bootstrap(SCHEME, targets, a, cut, b, cut, resamples=4000, seed=1)}
    recall = results["primary_recall"]
    assert (recall.value_a, recall.value_b) == (0.8, 0.6)
    assert recall.difference == pytest.approx(0.2)
    # 20 of 100 positives differ, always in A's favour: the standard error is about sqrt(.2 * .8 / 100)
    # = 0.04, so the 95% interval is about 0.2 +- 0.08, and no resample reaches 0 or 0.4
    assert 0.10 < recall.ci_low < 0.17 and 0.23 < recall.ci_high < 0.30
    assert recall.p_value == pytest.approx(1 / 4001)

    # macro F1: the point values are the recorded metric's (evaluate_predictions), the difference theirs
    macro = results["macro_f1"]
    f1_a = evaluate_predictions(SCHEME, a, targets, cut, bootstrap=0)["macro_f1"]
    f1_b = evaluate_predictions(SCHEME, b, targets, cut, bootstrap=0)["macro_f1"]
    assert macro.value_a == pytest.approx(f1_a) and macro.value_b == pytest.approx(f1_b)
    assert macro.difference == pytest.approx(f1_a - f1_b) and macro.ci_low > 0

    # B against A: the same numbers, negated
    reverse = {r.metric: r for r in paired_bootstrap(SCHEME, targets, b, cut, a, cut, resamples=4000, seed=1)}
    assert reverse["primary_recall"].difference == pytest.approx(-0.2)
    assert reverse["primary_recall"].ci_high == pytest.approx(-recall.ci_low)


def test_a_model_against_itself_differs_by_nothing() -> None:
    targets, a, _ = _pair()
    cut = np.array([0.5, 0.5])
    for result in paired_bootstrap(SCHEME, targets, a, cut, a, cut, resamples=500):
        assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0, 0, 0, 1)


def test_a_coin_flip_difference_is_not_significant() -> None:
    # 100 positives; A and B each catch 50, but different ones except 40 in common: 0.5 vs 0.5
    targets = np.zeros((200, 1), dtype=int)
    targets[:100] = 1
    a, b = np.zeros((200, 1)), np.zeros((200, 1))
    a[:50], b[10:60] = 0.9, 0.9
    scheme = MultiLabelScheme(labels=["scam"], primary_label="scam")
    [recall, _] = paired_bootstrap(scheme, targets, a, np.array([0.5]), b, np.array([0.5]), resamples=2000)
    assert recall.difference == 0 and recall.ci_low < 0 < recall.ci_high and recall.p_value == 1


def test_levels_use_the_primary_level() -> None:
    scheme = LevelsScheme(levels=["neither", "offensive", "hate"])
    targets = np.array([2] * 10 + [1] * 10 + [0] * 10)
    a = np.tile([0.1, 0.2, 0.7], (30, 1))  # every row called hate: hate recall 1.0
    b = np.tile([0.7, 0.2, 0.1], (30, 1))  # every row called neither: hate recall 0.0
    cut = np.array([0.5, 0.5])
    [recall, _] = paired_bootstrap(scheme, targets, a, cut, b, cut, resamples=200)
    assert (recall.value_a, recall.value_b, recall.difference) == (1.0, 0.0, 1.0)
