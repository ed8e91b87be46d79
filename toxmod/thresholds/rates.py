"""Counting thresholded decisions: confusion counts per column and the rates made from them. Below
both the threshold cuts (which score a cut by its F1) and evaluation (which reports them)."""

from __future__ import annotations

import numpy as np


def safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def confusion_counts(targets: np.ndarray, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column tp, fp, fn, tn of boolean (n, R) matrices."""
    t, p = np.asarray(targets, dtype=bool), np.asarray(predictions, dtype=bool)
    return {
        "tp": (t & p).sum(axis=0),
        "fp": (~t & p).sum(axis=0),
        "fn": (t & ~p).sum(axis=0),
        "tn": (~t & ~p).sum(axis=0),
    }


def rates(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and FPR from confusion counts.

    Recall without positives and FPR without negatives are undefined: NaN (written as null), never a
    0.0 that reads like a result. Precision and F1 follow ``zero_division=0`` (nothing flagged: 0).
    """
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return {
        "precision": safe_divide(tp, tp + fp),
        "recall": divide_or_nan(tp, tp + fn),
        "f1": safe_divide(2 * tp, 2 * tp + fp + fn),
        "fpr": divide_or_nan(fp, fp + tn),
    }


def divide_or_nan(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (undefined, not zero)."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)
