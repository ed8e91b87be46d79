"""Metrics at the chosen thresholds, ranking metrics, calibration error and bootstrap intervals.

Metric names follow ``{label}/{metric}`` and ``{metric}``; the caller prefixes the split
(``holdout/scam/recall``, ``holdout/macro_f1``).
"""

from __future__ import annotations

import math

import numpy as np

from toxmod.data.schemes import LabelScheme, ReportView
from toxmod.thresholds.rates import confusion_counts, divide_or_nan, rates, safe_divide

PER_LABEL_METRICS = ("precision", "recall", "f1", "fpr", "support", "roc_auc", "pr_auc")


def calibration_bins(
    confidence: np.ndarray, outcome: np.ndarray, n_bins: int = 15
) -> list[tuple[float, float, int]]:
    """``(mean confidence, outcome rate, count)`` of each non-empty equal-width confidence bin."""
    confidence, outcome = np.asarray(confidence, dtype=float), np.asarray(outcome, dtype=float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    found = []
    for b in np.unique(bins):
        in_bin = bins == b
        found.append((confidence[in_bin].mean(), outcome[in_bin].mean(), int(in_bin.sum())))
    return found


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = 15) -> float:
    """Mean |confidence - outcome rate| over equal-width confidence bins, weighted by bin size."""
    if len(confidence) == 0:
        return math.nan
    total = 0.0
    for mean_confidence, rate, count in calibration_bins(confidence, outcome, n_bins):
        total += count * abs(mean_confidence - rate)
    return float(total / len(confidence))


def calibration_change(
    scheme: LabelScheme, before: np.ndarray, after: np.ndarray, targets: np.ndarray
) -> dict[str, float]:
    """ECE of the same rows' scores before and after calibration: ``{"before": .., "after": ..}``."""
    return {
        when: expected_calibration_error(*scheme.calibration_pairs(scores, np.asarray(targets)))
        for when, scores in (("before", before), ("after", after))
    }


def ranking(targets: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC-AUC and PR-AUC (average precision) of one binary column; NaN for a single class."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # not at import: serving never ranks

    if targets.all() or not targets.any():
        return math.nan, math.nan
    return float(roc_auc_score(targets, scores)), float(average_precision_score(targets, scores))


def evaluate_predictions(
    scheme: LabelScheme,
    scores: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of one split at the given per-decision thresholds."""

    predictions = scheme.predict(scores, thresholds)
    view = scheme.report_view(scores, targets, predictions)
    counts = confusion_counts(view.targets, view.predictions)
    per_label = rates(counts)
    support = view.targets.sum(axis=0)
    metrics: dict[str, float] = {}
    for j, name in enumerate(view.names):
        roc_auc, pr_auc = ranking(view.targets[:, j], view.scores[:, j])
        values = {key: per_label[key][j] for key in per_label} | {
            "support": support[j],
            "roc_auc": roc_auc,
            "pr_auc": pr_auc,
        }
        metrics.update({f"{name}/{key}": float(values[key]) for key in PER_LABEL_METRICS})
    output_aucs = [
        metrics[f"{n}/roc_auc"] for n in scheme.output_names if not math.isnan(metrics[f"{n}/roc_auc"])
    ]
    metrics["mean_roc_auc"] = float(np.mean(output_aucs)) if output_aucs else math.nan
    metrics["macro_f1"] = float(per_label["f1"].mean())
    metrics["weighted_f1"] = float((per_label["f1"] * support).sum() / max(support.sum(), 1))
    metrics.update(scheme.headline(targets, predictions))
    metrics["ece"] = expected_calibration_error(*scheme.calibration_pairs(scores, targets))
    metrics.update(_decision_metrics(scheme, scores, targets, thresholds, set(view.names)))
    metrics["n_examples"] = float(len(targets))
    if bootstrap:
        metrics.update(bootstrap_intervals(scheme, view, targets, predictions, bootstrap, seed))
    return metrics


def _decision_metrics(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, reported: set[str]
) -> dict[str, float]:
    """Each thresholded decision's negatives (what its FPR is a share of), and the recall, FPR and
    precision of those not already reported as a label (levels: P(level >= k))."""
    names = scheme.decision_names
    truth = scheme.decision_targets(targets)
    metrics = {f"{name}/negatives": float((~truth[:, j]).sum()) for j, name in enumerate(names)}
    if set(names) <= reported:
        return metrics
    passed = scheme.decision_scores(scores) >= np.asarray(thresholds)[None, :]
    decision_rates = rates(confusion_counts(truth, passed))
    metrics.update(
        {
            f"{name}/{key}": float(decision_rates[key][j])
            for j, name in enumerate(names)
            for key in ("recall", "fpr", "precision")
        }
    )
    return metrics


def bootstrap_intervals(
    scheme: LabelScheme,
    view: ReportView,
    targets: np.ndarray,
    predictions: np.ndarray,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap CIs (rows resampled) for macro F1, the headline metric and the primary label."""
    n = len(targets)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    t, p = view.targets.astype(float), view.predictions.astype(float)
    tp, fp, fn = weights @ (t * p), weights @ ((1 - t) * p), weights @ (t * (1 - p))
    tn = weights @ ((1 - t) * (1 - p))
    f1 = safe_divide(2 * tp, 2 * tp + fp + fn)
    samples: dict[str, np.ndarray] = {"macro_f1": f1.mean(axis=1)}
    correct = scheme.example_correct(targets, predictions).astype(float)
    samples[scheme.headline_name] = weights @ correct / n
    if scheme.primary_label in view.names:
        j = view.names.index(scheme.primary_label)
        samples[f"{scheme.primary_label}/recall"] = divide_or_nan(tp[:, j], tp[:, j] + fn[:, j])
        samples[f"{scheme.primary_label}/fpr"] = divide_or_nan(fp[:, j], fp[:, j] + tn[:, j])
    tail = (1 - level) / 2 * 100
    result = {}
    for name, values in samples.items():
        if np.isnan(values).all():  # undefined in every resample (no positives at all)
            result[f"{name}_ci_low"] = result[f"{name}_ci_high"] = math.nan
            continue
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        result[f"{name}_ci_low"], result[f"{name}_ci_high"] = float(low), float(high)
    return result
