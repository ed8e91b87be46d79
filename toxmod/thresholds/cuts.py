"""Thresholds as values: one cut per decision, how each was chosen, read and written as
``thresholds.json``; the exact cuts the methods are built from (target FPR, F1 optimum) and what a
set of cuts achieves."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import DamagedFileError, ToxmodError
from toxmod.files import read_json, require_keys
from toxmod.thresholds.rates import confusion_counts, rates


@dataclass
class Thresholds:
    """One threshold per thresholded decision (``score >= threshold`` flags), with how it was chosen."""

    names: list[str]
    values: list[float]
    method: str
    fit_split: str
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.values))

    def as_metrics(self) -> dict[str, float]:
        """``threshold/<name>`` and ``threshold/<name>/<detail>`` numbers for the tracker."""
        metrics: dict[str, float] = {}
        for name, value in self.as_dict().items():
            metrics[f"threshold/{name}"] = value
            details = self.details.get(name, {})
            metrics.update(
                {f"threshold/{name}/{k}": float(v) for k, v in details.items() if isinstance(v, (int, float))}
            )
        return metrics

    def fpr_targets(self) -> dict[str, float]:
        """``{decision: target FPR}`` of the decisions chosen under an FPR budget (none for max_f1)."""
        return {
            name: float(details["target_fpr"])
            for name, details in self.details.items()
            if isinstance(details, dict) and details.get("target_fpr") is not None
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fit_split": self.fit_split,
            "thresholds": self.as_dict(),
            "details": self.details,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, scheme: LabelScheme | None = None) -> Thresholds:
        """Read ``thresholds.json``; with ``scheme``, matched to its decisions by name (in its order).

        A damaged file, a non-numeric value, or names that differ from the scheme's decisions are a
        one-line error: a threshold is never applied to another decision by position.
        """
        path = Path(path)
        data = read_json(path)
        require_keys(path, data, ("thresholds", "method", "fit_split"))
        values = data["thresholds"]
        if not isinstance(values, dict):
            raise DamagedFileError(f"{path}: thresholds must map decision names to numbers")
        bad = [name for name, value in values.items() if not _is_number(value)]
        if bad:
            shown = repr(values[bad[0]])
            shown = shown if len(shown) <= 40 else f"{shown[:40]}... ({len(shown)} characters)"
            raise DamagedFileError(f"{path}: threshold {bad[0]!r} is {shown}, not a finite number")
        names = list(values)
        if scheme is not None:
            missing = [n for n in scheme.decision_names if n not in values]
            extra = [n for n in names if n not in scheme.decision_names]
            if missing or extra:
                raise DamagedFileError(
                    f"{path}: thresholds name {names}, but the decisions are {scheme.decision_names}"
                    f" (missing {missing}, unknown {extra})"
                )
            names = list(scheme.decision_names)
        return cls(
            names,
            [float(values[n]) for n in names],
            data["method"],
            data["fit_split"],
            data.get("details", {}),
        )


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond any float (10**400)
        return False


def threshold_at_fpr(
    scores: np.ndarray, positive: np.ndarray, target_fpr: float
) -> tuple[float, dict[str, Any]]:
    """The lowest threshold whose FPR on these scores is <= ``target_fpr`` (flag when ``score >= t``).

    With negatives sorted in decreasing order s_0 >= s_1 >= ..., at most k = floor(target * n_neg)
    negatives may be flagged, so the threshold is the next float above s_k: every negative equal to
    s_k (ties included) stays unflagged, and no lower threshold satisfies the bound.
    """
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    negatives = np.sort(scores[~positive])[::-1]
    n_negatives = len(negatives)
    if n_negatives == 0:
        raise ToxmodError("cannot choose a target-FPR threshold: the calibration data has no negatives")
    allowed = int(math.floor(target_fpr * n_negatives + 1e-9))
    threshold = (
        float(np.nextafter(negatives[allowed], np.inf)) if allowed < n_negatives else float(scores.min())
    )
    flagged = scores >= threshold
    n_positive = int(positive.sum())
    info = {
        "target_fpr": float(target_fpr),
        "fit_fpr": float(flagged[~positive].mean()),
        "fit_recall": float(flagged[positive].mean()) if n_positive else math.nan,
        "n_negatives": n_negatives,
        "n_positives": n_positive,
        "fpr_granularity": 1.0 / n_negatives,
    }
    return threshold, info


OBJECTIVES = ("macro_f1", "headline")


def objective_value(
    scheme: LabelScheme, objective: str, scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray
) -> float:
    """``macro_f1`` (over the reported labels) or ``headline`` (exact match / accuracy) at ``thresholds``."""
    predictions = scheme.predict(scores, thresholds)
    if objective == "headline":
        return float(np.mean(scheme.example_correct(targets, predictions)))
    view = scheme.report_view(scores, targets, predictions)
    return float(rates(confusion_counts(view.targets, view.predictions))["f1"].mean())


def achieved(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, values: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per decision, what ``values`` achieve on these scores: FPR, recall (NaN without negatives /
    positives) and the negatives and positives they are shares of."""
    passed = scheme.decision_scores(scores) >= np.asarray(values)[None, :]
    truth = scheme.decision_targets(targets)
    found = {}
    for j, name in enumerate(scheme.decision_names):
        positive, negative = truth[:, j], ~truth[:, j]
        found[name] = {
            "fit_fpr": float(passed[negative, j].mean()) if negative.any() else math.nan,
            "fit_recall": float(passed[positive, j].mean()) if positive.any() else math.nan,
            "n_negatives": int(negative.sum()),
            "n_positives": int(positive.sum()),
        }
    return found


def f1_optimal_threshold(
    scores: np.ndarray, positive: np.ndarray, low: float = -np.inf
) -> tuple[float, float]:
    """The threshold ``>= low`` with the highest F1 on these scores (flag when ``score >= t``), and that
    F1. Exact: every distinct score is a candidate; the cut is placed midway to the next lower score,
    so it flags the same rows here and leaves room on either side. Ties go to the higher threshold."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_positive = int(positive.sum())
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last row of each group of equal scores
    candidates, tp, fp = ranked[last], tp[last], fp[last]
    f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + n_positive, 1), 0.0)
    allowed = candidates >= low
    if not n_positive or not allowed.any():
        return float(max(low, scores.max(initial=0.0)) + 1e-12), math.nan if not n_positive else 0.0
    best = int(np.argmax(np.where(allowed, f1, -1.0)))  # the first maximum: the highest threshold
    below = candidates[best + 1] if best + 1 < len(candidates) else candidates[best]
    return float(max((candidates[best] + below) / 2.0, low)), float(f1[best])


def tuned_thresholds(
    scheme: LabelScheme,
    scores: np.ndarray,
    targets: np.ndarray,
    objective: str = "macro_f1",
    lows: np.ndarray | None = None,
    rounds: int = 2,
    candidates: int = 200,
) -> np.ndarray:
    """Thresholds (each ``>= lows``) that maximize ``objective`` on these scores: every decision at its
    own F1 optimum, then, when the decisions act together (level cuts) or the objective is not their
    own F1, ``rounds`` of coordinate ascent over ``candidates`` quantiles of each decision's scores."""
    decision_scores, decision_targets = scheme.decision_scores(scores), scheme.decision_targets(targets)
    names = scheme.decision_names
    lows = np.full(len(names), -np.inf) if lows is None else np.asarray(lows, dtype=np.float64)
    values = np.array(
        [
            f1_optimal_threshold(decision_scores[:, j], decision_targets[:, j], lows[j])[0]
            for j in range(len(names))
        ]
    )
    # independent decisions scored by macro F1 over just themselves: each one's own optimum is it
    own_optima = objective == "macro_f1" and scheme.decisions_independent
    if not rounds or (own_optima and scheme.report_names == scheme.decision_names):
        return values
    best = objective_value(scheme, objective, scores, targets, values)
    for _ in range(rounds):
        improved = False
        for j in range(len(names)):
            column = decision_scores[:, j]
            grid = np.unique(np.quantile(column, np.linspace(0, 1, candidates)))
            for value in grid[grid >= lows[j]]:
                trial = values.copy()
                trial[j] = value
                score = objective_value(scheme, objective, scores, targets, trial)
                if score > best + 1e-12:
                    best, values, improved = score, trial, True
        if not improved:
            break
    return values
