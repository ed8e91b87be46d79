"""Is model A really better than model B on this holdout? A paired bootstrap over the same rows.

Both models' per-row predictions on one holdout (each at its own calib thresholds) are resampled with
the same row weights, so what the interval measures is the difference, not each model's own noise
(two overlapping single-model intervals say little about a difference between correlated models).
The p-value is two-sided under the shifted null: the share of resampled differences at least as far
from the observed difference as the observed difference is from zero (Efron and Tibshirani 1993,
sec. 16.4; Berg-Kirkpatrick et al. 2012), with one added to both counts so it is never zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from toxmod.data.schemes import LabelScheme

PAIRED_METRICS = ("primary_recall", "macro_f1")


@dataclass(frozen=True)
class PairedDifference:
    """``metric`` of A minus that of B on the same rows, its percentile interval and p-value."""

    metric: str
    value_a: float
    value_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int

    def as_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def _counts(weights: np.ndarray, truth: np.ndarray, flagged: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted TP, FP, FN per label (rows of ``weights`` are resamples, a row of ones is the sample)."""
    t, p = truth.astype(float), flagged.astype(float)
    return weights @ (t * p), weights @ ((1 - t) * p), weights @ (t * (1 - p))


def _statistics(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """The paired metrics under each row of ``weights``, computed as ``evaluate_predictions`` does."""
    predictions = scheme.predict(scores, thresholds)
    view = scheme.report_view(scores, targets, predictions)
    tp, fp, fn = _counts(weights, view.targets, view.predictions)
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    primary = scheme.primary_label
    if primary in view.names:
        j = view.names.index(primary)
        positives = tp[:, j] + fn[:, j]
    else:  # a level scheme's primary decision (P(level >= k)) when it is not a reported label
        j = scheme.decision_names.index(scheme.primary_decision)
        flagged = scheme.decision_scores(scores) >= np.asarray(thresholds)[None, :]
        tp, _, fn = _counts(weights, scheme.decision_targets(targets), flagged)
        positives = tp[:, j] + fn[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(positives > 0, tp[:, j] / positives, np.nan)
    return {"primary_recall": recall, "macro_f1": f1.mean(axis=1)}


def paired_bootstrap(
    scheme: LabelScheme,
    targets: np.ndarray,
    scores_a: np.ndarray,
    thresholds_a: np.ndarray,
    scores_b: np.ndarray,
    thresholds_b: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[PairedDifference]:
    """A minus B for each of ``PAIRED_METRICS`` on the same rows (both models scored these targets)."""
    targets = np.asarray(targets)
    n = len(targets)
    sample = np.ones((1, n))
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    observed_a = _statistics(scheme, scores_a, targets, thresholds_a, sample)
    observed_b = _statistics(scheme, scores_b, targets, thresholds_b, sample)
    resampled_a = _statistics(scheme, scores_a, targets, thresholds_a, weights)
    resampled_b = _statistics(scheme, scores_b, targets, thresholds_b, weights)
    tail = (1 - level) / 2 * 100
    results = []
    for metric in PAIRED_METRICS:
        a, b = float(observed_a[metric][0]), float(observed_b[metric][0])
        difference = a - b
        differences = resampled_a[metric] - resampled_b[metric]
        differences = differences[~np.isnan(differences)]
        if np.isnan(difference) or not len(differences):
            results.append(PairedDifference(metric, a, b, difference, np.nan, np.nan, np.nan, resamples))
            continue
        low, high = np.percentile(differences, [tail, 100 - tail])
        extreme = np.sum(np.abs(differences - difference) >= abs(difference) - 1e-12)
        p_value = (1 + extreme) / (1 + len(differences))
        results.append(
            PairedDifference(metric, a, b, difference, float(low), float(high), float(p_value), resamples)
        )
    return results
