"""A run's operating point as the benchmark pages print it: primary-label recall and FPR at the run's
own thresholds, and macro F1 (``evaluate_predictions``, the evaluator every run is recorded with);
and how many decisions two sets of scores of the same texts disagree on there."""

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


def flip_rate(scheme: Any, scores: Any, other_scores: Any, thresholds: Any) -> float:
    """Share of texts with any decision different between the two scores at ``thresholds``."""
    import numpy as np

    cut = np.asarray(thresholds)[None, :]
    changed = (scheme.decision_scores(scores) >= cut) != (scheme.decision_scores(other_scores) >= cut)
    return float(np.any(changed, axis=1).mean())
