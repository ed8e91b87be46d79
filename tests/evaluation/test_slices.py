"""Slices: buckets, per-slice rates with intervals, what is too small to say, the worst flagged, and
metric names MLflow accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toxmod.errors import ConfigError, DataError
from toxmod.evaluation.slices import (
    SliceSettings,
    bucket_labels,
    metric_key,
    needed_negatives,
    slice_keys,
    slice_metrics,
    slice_table,
)

pytestmark = pytest.mark.data_free


def test_buckets_by_declared_edges() -> None:
    assert bucket_labels([64, 128]) == ["<64", "64-128", ">=128"]
    keys = slice_keys("text_length", [3, 64, 100, 128, 500, ""], [64, 128], 50, "f")
    assert keys.tolist() == ["<64", "64-128", "64-128", ">=128", ">=128", "(missing)"]
    with pytest.raises(ConfigError, match=r"slice >=1000 of 'n' is empty"):
        slice_keys("n", [1, 2, 3], [2, 1000], 50, "f")
    assert slice_keys("n", [1, 2, 3], [2, 1000], 50, "f", require_all=False).tolist() == [
        "<2",
        "2-1000",
        "2-1000",
    ]
    with pytest.raises(DataError, match=r"^f: slice column 'n' holds 'abc', not a number"):
        slice_keys("n", ["1", "abc"], [2], 50, "f")
    with pytest.raises(ConfigError, match=r"increasing"):
        slice_keys("n", [1], [5, 2], 50, "f")


def test_categories_and_too_many_of_them() -> None:
    assert slice_keys("source", ["a", "b", "", "a"], None, 50, "f").tolist() == ["a", "b", "(missing)", "a"]
    with pytest.raises(
        ConfigError, match=r"column 'id' has 30 distinct values \(> evaluation.max_slices=20\)"
    ):
        slice_keys("id", [str(i) for i in range(30)], None, 20, "f")


def test_rates_notes_and_flags_by_hand() -> None:
    # slice a: 20 positives (15 caught), 60 negatives (3 flagged); slice b: 20 positives (10 caught),
    # 60 negatives (12 flagged); slice c: 2 positives, 5 negatives (too small for either)
    keys, truth, flagged = [], [], []
    for name, pos, caught, neg, false in (("a", 20, 15, 60, 3), ("b", 20, 10, 60, 12), ("c", 2, 1, 5, 0)):
        keys += [name] * (pos + neg)
        truth += [True] * pos + [False] * neg
        flagged += [True] * caught + [False] * (pos - caught) + [True] * false + [False] * (neg - false)
    settings = SliceSettings(min_positives=10, min_negatives=20, bootstrap=200, seed=0, worst=1)
    truth_matrix, flagged_matrix = np.array(truth)[:, None], np.array(flagged)[:, None]
    keys_array = np.array(keys, dtype=object)
    rows = slice_table(
        "source", keys_array, ["toxic"], truth_matrix, flagged_matrix, {"toxic": 0.02}, settings
    )
    a, b, c = rows
    assert (a.n, a.positives, a.negatives) == (80, 20, 60)
    assert a.values["recall"] == 0.75 and a.values["fpr"] == 0.05
    assert a.values["precision"] == 15 / 18 and a.values["f1"] == pytest.approx(2 * 15 / (2 * 15 + 3 + 5))
    assert a.values["recall_ci_low"] < 0.75 < a.values["recall_ci_high"]
    assert b.values["fpr"] == 0.2 and b.flag == "worst FPR, worst recall" and a.flag == ""
    # a 2% budget needs 50 negatives per slice; c has 5 negatives and 2 positives: said, not printed
    assert needed_negatives(0.02, settings) == 50
    assert math.isnan(c.values["recall"]) and math.isnan(c.values["fpr"])
    assert "2 positives < 10" in c.note and "5 negatives < 50 (FPR budget 0.02)" in c.note
    metrics = slice_metrics(rows)
    assert metrics["slice/source/b/toxic/fpr"] == 0.2 and "slice/source/c/toxic/fpr" not in metrics
    assert (
        metrics["slices/source/toxic/worst_fpr"] == 0.2 and metrics["slices/source/toxic/worst_recall"] == 0.5
    )


def test_metric_keys_mlflow_accepts() -> None:
    assert metric_key("slice", "text_length", "<64", "scam", "fpr") == "slice/text_length/lt64/scam/fpr"
    assert metric_key("slice", "len", ">=128", "a/b") == "slice/len/ge128/a_b"
    assert metric_key("slice", "src", "naïve?*", "x") == "slice/src/naïve__/x"
