"""Validation at the operating point: what a trainer-driven model is selected on, epoch by epoch.

The valid split is thresholded the way the run's thresholds are chosen on calib, then measured:

* ``threshold=target_fpr``: thresholds at the FPR budget on valid itself, then
  ``valid/<decision>/recall_at_fpr`` (the default monitor: the primary decision's), macro F1, mean
  ROC-AUC and the headline metric (``OperatingPointMetrics``);
* ``threshold=max_f1`` / ``threshold=optuna``: thresholds tuned on valid for the objective (macro F1,
  or Optuna's objective within the FPR budget), then ``valid/tuned_<objective>`` (the default monitor)
  and the same summary metrics (``TunedThresholdMetrics``).

``validation_for(thresholder, scheme)`` picks one by the thresholder's ``method``. The stage builds it
and hands it to the model (``FitContext.validation_metrics``), so the models never import thresholds
or metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.evaluation.metrics import evaluate_predictions
from toxmod.thresholds.cuts import tuned_thresholds
from toxmod.thresholds.methods import TargetFPRThresholds

SUMMARY_METRICS = ("macro_f1", "mean_roc_auc")


def _summary_names(scheme: LabelScheme) -> list[str]:
    return [f"valid/{name}" for name in (*SUMMARY_METRICS, scheme.headline_name)]


def _summary(scheme: LabelScheme, values: dict[str, float]) -> dict[str, float]:
    """Macro F1, mean ROC-AUC and the headline metric of valid (NaN where undefined)."""
    return {f"valid/{n}": float(values.get(n, np.nan)) for n in (*SUMMARY_METRICS, scheme.headline_name)}


class OperatingPointMetrics:
    """``valid/...`` metrics of a model's valid scores at the FPR budget ``budget``."""

    def __init__(self, scheme: LabelScheme, budget: TargetFPRThresholds) -> None:
        self.scheme = scheme
        self.budget = TargetFPRThresholds(budget.target_fpr, budget.per_label, fit_split="valid")

    @property
    def default_monitor(self) -> str:
        """The primary decision's recall at its target FPR on valid."""
        return f"valid/{self.scheme.primary_decision}/recall_at_fpr"

    @property
    def names(self) -> list[str]:
        recalls = [f"valid/{name}/recall_at_fpr" for name in self.scheme.decision_names]
        return recalls + _summary_names(self.scheme)

    def __call__(self, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Every metric in ``names``; NaN where undefined (e.g. a label with no positives in valid)."""
        thresholds = self.budget.fit(self.scheme, scores, targets)
        values = evaluate_predictions(self.scheme, scores, targets, thresholds.as_array(), 0, 0)
        metrics = {
            f"valid/{name}/recall_at_fpr": float(thresholds.details[name]["fit_recall"])
            for name in thresholds.names
        }
        return {**metrics, **_summary(self.scheme, values)}


class TunedThresholdMetrics:
    """``valid/tuned_<objective>``: the objective at thresholds tuned on valid for it (each decision
    at or above its target-FPR cut when there is a ``budget``), beside the summary metrics there."""

    def __init__(self, scheme: LabelScheme, objective: str, budget: TargetFPRThresholds | None) -> None:
        self.scheme, self.objective = scheme, objective
        self.budget = (
            TargetFPRThresholds(budget.target_fpr, budget.per_label, fit_split="valid") if budget else None
        )

    @property
    def default_monitor(self) -> str:
        return f"valid/tuned_{self.objective}"

    @property
    def names(self) -> list[str]:
        return [self.default_monitor, *_summary_names(self.scheme)]

    def __call__(self, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        lows = self.budget.fit(self.scheme, scores, targets).as_array() if self.budget else None
        cut = tuned_thresholds(self.scheme, scores, targets, self.objective, lows)
        values = evaluate_predictions(self.scheme, scores, targets, cut, 0, 0)
        tuned = values.get("macro_f1" if self.objective == "macro_f1" else self.scheme.headline_name, np.nan)
        return {self.default_monitor: float(tuned), **_summary(self.scheme, values)}


# threshold method -> what validation measures for it
VALIDATIONS: dict[str, Callable[[Any, LabelScheme], Any]] = {
    "target_fpr": lambda thresholder, scheme: OperatingPointMetrics(scheme, thresholder.budget),
    "optuna": lambda thresholder, scheme: TunedThresholdMetrics(
        scheme, thresholder.objective, thresholder.budget
    ),
    "max_f1": lambda thresholder, scheme: TunedThresholdMetrics(scheme, "macro_f1", None),
}


def validation_for(thresholder: Any, scheme: LabelScheme) -> OperatingPointMetrics | TunedThresholdMetrics:
    """The valid metrics that match how ``thresholder`` chooses thresholds on calib."""
    return VALIDATIONS[thresholder.method](thresholder, scheme)
