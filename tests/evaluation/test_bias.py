"""Golden values of the unintended-bias metrics on a hand-computed example, and agreement with plain
scikit-learn ``roc_auc_score`` on the subsets the definitions name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from toxmod.errors import DataError
from toxmod.evaluation.bias import bias_report, identity_aucs, membership, power_mean, roc_auc

pytestmark = pytest.mark.data_free

# Rows 0-3 name identity a, rows 4-7 identity b.
TARGETS = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
SCORES = np.array([0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.3, 0.5])
A = np.arange(8) < 4
B = ~A


def test_the_three_aucs_of_one_identity_by_hand() -> None:
    a = identity_aucs("a", A, TARGETS, SCORES)
    # subgroup: positives {.9, .4} vs negatives {.6, .1}: .4 < .6 is the one wrong pair of 4
    assert a.subgroup_auc == 0.75
    # BPSN: a's negatives {.6, .1} vs b's positives {.8, .7}: all 4 pairs right
    assert a.bpsn_auc == 1.0
    # BNSP: a's positives {.9, .4} vs b's negatives {.3, .5}: .4 < .5 wrong
    assert a.bnsp_auc == 0.75
    b = identity_aucs("b", B, TARGETS, SCORES)
    assert (b.subgroup_auc, b.bpsn_auc, b.bnsp_auc) == (1.0, 0.75, 1.0)
    assert (a.n, a.positives) == (4, 2)


def test_power_mean_and_final_score_by_hand() -> None:
    report = bias_report("toxic", {"a": A, "b": B}, TARGETS, SCORES, min_examples=1)
    # every AUC pair is (0.75, 1.0): M_-5 = ((0.75^-5 + 1^-5) / 2)^(-1/5), 0.75^-5 = 1024/243
    expected_mean = ((1024 / 243 + 1) / 2) ** (-1 / 5)
    assert expected_mean == pytest.approx(0.825604, abs=1e-6)
    for value in report.power_means.values():
        assert value == pytest.approx(expected_mean, abs=1e-12)
    assert report.overall_auc == 14 / 16  # 2 of the 16 positive-negative pairs are wrong
    assert report.final_score == pytest.approx(0.25 * 14 / 16 + 0.75 * expected_mean, abs=1e-12)
    assert report.identities[0].identity == "a"  # worst subgroup AUC first
    metrics = report.metrics()
    assert metrics["bias/a/bnsp_auc"] == 0.75 and metrics["bias/final_score"] == report.final_score


def test_power_mean_edges() -> None:
    assert power_mean([0.8]) == pytest.approx(0.8)
    assert power_mean([0.5, 0.0]) == 0.0
    assert math.isnan(power_mean([math.nan]))
    assert power_mean([0.9, 0.9, 0.9]) == pytest.approx(0.9)
    assert power_mean([0.5, 1.0]) < np.mean([0.5, 1.0])  # p = -5 leans to the worst


def test_small_or_one_class_identities_are_skipped_and_listed() -> None:
    only_negative = np.array([False, False, True, True, False, False, False, False])
    report = bias_report(
        "toxic", {"a": A, "tiny": np.eye(8, dtype=bool)[0], "c": only_negative}, TARGETS, SCORES, 2
    )
    assert [r.identity for r in report.identities] == ["a"]
    assert report.skipped == {"tiny": "1 rows < 2", "c": "all 2 rows non-toxic: no subgroup AUC"}


def test_aucs_equal_scikit_learn_on_the_subsets() -> None:
    rng = np.random.default_rng(3)
    n = 600
    targets = rng.random(n) < 0.3
    scores = np.round(np.clip(targets * 0.3 + rng.random(n) * 0.8, 0, 1), 2)  # rounded: ties on purpose
    identities = {f"id{k}": rng.random(n) < 0.2 for k in range(4)}
    report = bias_report("toxic", identities, targets, scores, min_examples=10)
    assert report.overall_auc == pytest.approx(roc_auc_score(targets, scores), abs=1e-12)
    for row in report.identities:
        member = identities[row.identity]
        bpsn = (member & ~targets) | (~member & targets)
        bnsp = (member & targets) | (~member & ~targets)
        assert row.subgroup_auc == pytest.approx(roc_auc_score(targets[member], scores[member]), abs=1e-12)
        assert row.bpsn_auc == pytest.approx(roc_auc_score(targets[bpsn], scores[bpsn]), abs=1e-12)
        assert row.bnsp_auc == pytest.approx(roc_auc_score(targets[bnsp], scores[bnsp]), abs=1e-12)
    assert math.isnan(roc_auc(np.ones(3, dtype=bool), np.arange(3)))


def test_membership_thresholds_fractions_and_refuses_text() -> None:
    assert membership("identity_x", np.array(["0", "0.5", "0.49", "1", ""], dtype=object), "f").tolist() == [
        False,
        True,
        False,
        True,
        False,
    ]
    with pytest.raises(DataError, match=r"^f: identity column 'template' holds 'name_adj'; identity columns"):
        membership("template", np.array(["name_adj", "x"], dtype=object), "f")
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        membership("identity_x", np.array(["3"], dtype=object), "f")
