"""A run's operating point as the benchmark pages print it: primary-label recall and FPR at the run's
own thresholds, and macro F1 (``evaluate_predictions``, the evaluator every run is recorded with)."""

from __future__ import annotations

from typing import Any


def operating_point(scheme: Any, scores: Any, targets: Any, thresholds: Any) -> dict[str, float]:
    from toxmod.evaluation.metrics import evaluate_predictions

    metrics = evaluate_predictions(scheme, scores, targets, thresholds, bootstrap=0)
    primary = scheme.primary_label
    return {
        "recall": metrics[f"{primary}/recall"],
        "fpr": metrics[f"{primary}/fpr"],
        "macro_f1": metrics["macro_f1"],
    }
