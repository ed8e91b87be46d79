"""Validation at the operating point: what a trainer-driven model is selected on, epoch by epoch.

Thresholds are chosen on valid itself at the run's FPR budget (the same per-decision targets the
calibration step uses), then ``valid/<decision>/recall_at_fpr``, macro F1, mean ROC-AUC and the
headline metric are computed. The stage builds this and hands it to the model (``ValidationData``),
so the models never import thresholds or metrics.
"""

from __future__ import annotations

import numpy as np

from toxmod.calibration.thresholds import TargetFPRThresholds
from toxmod.data.schemes import LabelScheme
from toxmod.evaluation.metrics import evaluate_predictions

SUMMARY_METRICS = ("macro_f1", "mean_roc_auc")


class OperatingPointMetrics:
    """``valid/...`` metrics of a model's valid scores at the FPR budget ``budget``."""

    def __init__(self, scheme: LabelScheme, budget: TargetFPRThresholds) -> None:
        self.scheme = scheme
        self.budget = TargetFPRThresholds(budget.target_fpr, budget.per_label, fit_split="valid")

    @property
    def names(self) -> list[str]:
        summary = [f"valid/{name}" for name in (*SUMMARY_METRICS, self.scheme.headline_name)]
        return [f"valid/{name}/recall_at_fpr" for name in self.scheme.decision_names] + summary

    def __call__(self, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Every metric in ``names``; NaN where undefined (e.g. a label with no positives in valid)."""
        thresholds = self.budget.fit(self.scheme, scores, targets)
        values = evaluate_predictions(self.scheme, scores, targets, thresholds.as_array(), 0, 0)
        metrics = {
            f"valid/{name}/recall_at_fpr": float(thresholds.details[name]["fit_recall"])
            for name in thresholds.names
        }
        for name in (*SUMMARY_METRICS, self.scheme.headline_name):
            metrics[f"valid/{name}"] = float(values.get(name, np.nan))
        return metrics
