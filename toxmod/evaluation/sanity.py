"""Is a model better than chance? Warnings for predictions that collapse to one answer, scores that
barely vary, and ranking no better than a coin, computed for every run (an LLM prompt too weak for the
task is the common case, a broken training run the other)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from toxmod.data.schemes import LabelScheme

CHANCE_AUC = 0.6  # ROC-AUC below this ranks hardly better than a coin (0.5)
FLAT_SPREAD = 1e-3  # a decision score standard deviation below this is constant for practical purposes
COLLAPSED_SHARE = 0.99  # one predicted answer for this share of texts


def chance_warnings(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, predictions: np.ndarray, split: str
) -> list[str]:
    """One line per problem found in a split's scores and thresholded predictions."""
    warnings = []
    decision_scores = scheme.decision_scores(scores)
    decision_targets = scheme.decision_targets(targets)
    for j, name in enumerate(scheme.decision_names):
        column, truth = decision_scores[:, j], decision_targets[:, j]
        spread = float(np.std(column))
        if spread < FLAT_SPREAD:
            warnings.append(
                f"{split} scores of {name} barely vary (std {spread:.2g}): "
                "the model does not tell texts apart"
            )
            continue
        if 0 < truth.sum() < len(truth):
            auc = float(roc_auc_score(truth, column))
            if auc < CHANCE_AUC:
                warnings.append(f"{split} ROC-AUC of {name} is {auc:.3f}: no better than chance")
    view = scheme.report_view(scores, targets, predictions)
    answers = [tuple(row) for row in view.predictions.astype(int)]
    if answers:
        values, counts = np.unique(np.array(answers), axis=0, return_counts=True)
        share = counts.max() / len(answers)
        if share >= COLLAPSED_SHARE:
            most = values[counts.argmax()]
            named = ", ".join(n for n, v in zip(view.names, most) if v) or "nothing"
            warnings.append(f"{split} predictions collapse to one answer ({named}) for {share:.1%} of texts")
    return warnings
