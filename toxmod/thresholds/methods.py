"""How thresholds are chosen on calibration data (``threshold=``): exact target-FPR cuts, F1-optimal
cuts (no FPR budget), or an Optuna search under the FPR budget. Each is a ``Thresholder``."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError
from toxmod.progress import console
from toxmod.thresholds.cuts import (
    OBJECTIVES,
    Thresholds,
    achieved,
    objective_value,
    threshold_at_fpr,
    tuned_thresholds,
)


class TargetFPRThresholds:
    """Per decision, the exact lowest threshold with calibration FPR <= target (``per_label`` overrides)."""

    method = "target_fpr"

    def __init__(
        self, target_fpr: float = 0.02, per_label: dict[str, float] | None = None, fit_split: str = "calib"
    ) -> None:
        if not 0.0 <= target_fpr < 1.0:
            raise ConfigError(f"threshold.target_fpr must be in [0, 1), got {target_fpr}")
        self.target_fpr = float(target_fpr)
        self.per_label = {str(k): float(v) for k, v in (per_label or {}).items()}
        self.fit_split = fit_split

    @property
    def budget(self) -> TargetFPRThresholds:
        """The per-decision FPR targets (itself): what checkpoint selection on valid uses too."""
        return self

    def target_for(self, name: str) -> float:
        return self.per_label.get(name, self.target_fpr)

    def check(self, scheme: LabelScheme) -> None:
        """Settings that refer to the scheme: ``per_label`` must name its decisions."""
        unknown = set(self.per_label) - set(scheme.decision_names)
        if unknown:
            raise ConfigError(
                f"threshold.per_label names {sorted(unknown)}; decisions are {scheme.decision_names}"
            )

    def fit(self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray) -> Thresholds:
        self.check(scheme)
        decision_scores, decision_targets = scheme.decision_scores(scores), scheme.decision_targets(targets)
        values, details = [], {}
        for j, name in enumerate(scheme.decision_names):
            value, info = threshold_at_fpr(
                decision_scores[:, j], decision_targets[:, j], self.target_for(name)
            )
            values.append(value)
            details[name] = info
        return Thresholds(scheme.decision_names, values, self.method, self.fit_split, details)


class MaxF1Thresholds:
    """Per decision, the F1-optimal threshold on ``fit_split``, with no FPR budget: for benchmarks
    scored by F1. Independent labels get their own F1 optimum; level cuts are tuned together for the
    levels' macro F1 (coordinate ascent from each cut's own optimum)."""

    method = "max_f1"
    budget = None  # no FPR target: nothing to hold a run's FPR to

    def __init__(self, fit_split: str = "calib") -> None:
        self.fit_split = fit_split

    def check(self, scheme: LabelScheme) -> None:
        return None

    def fit(self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray) -> Thresholds:
        joint = not scheme.decisions_independent
        values = tuned_thresholds(scheme, scores, targets, "macro_f1", rounds=2 if joint else 0)
        details: dict[str, dict[str, Any]] = achieved(scheme, scores, targets, values)
        details["_objective"] = {"macro_f1": objective_value(scheme, "macro_f1", scores, targets, values)}
        return Thresholds(
            scheme.decision_names, [float(v) for v in values], self.method, self.fit_split, details
        )


class OptunaThresholds:
    """Joint threshold search with Optuna (SQLite storage, resumable) for an objective under FPR budgets.

    Each decision's search range starts at its target-FPR threshold (``target_fpr``, ``per_label``:
    the same budget ``threshold=target_fpr`` uses), so every trial satisfies the per-label
    calibration FPR budget by construction; the objective (``macro_f1`` or the scheme's headline
    metric) is maximized on the calibration data.
    """

    method = "optuna"

    def __init__(
        self,
        n_trials: int = 200,
        objective: str = "macro_f1",
        target_fpr: float = 0.02,
        per_label: dict[str, float] | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        seed: int = 0,
        fit_split: str = "calib",
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"threshold.objective={objective!r}; expected 'macro_f1' or 'headline'")
        self.n_trials, self.objective, self.storage, self.study_name, self.seed = (
            int(n_trials),
            objective,
            storage,
            study_name,
            int(seed),
        )
        self.budget = TargetFPRThresholds(target_fpr, per_label, fit_split)
        self.fit_split = fit_split

    def check(self, scheme: LabelScheme) -> None:
        self.budget.check(scheme)

    def _objective_value(
        self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray
    ) -> float:
        return objective_value(scheme, self.objective, scores, targets, thresholds)

    def _default_study_name(self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(scores, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(targets, dtype=np.int64).tobytes())
        digest.update(
            json.dumps(
                [self.objective, self.budget.target_fpr, self.budget.per_label, scheme.describe(), self.seed]
            ).encode()
        )
        return f"thresholds-{digest.hexdigest()[:16]}"

    def fit(self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray) -> Thresholds:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        floor = self.budget.fit(scheme, scores, targets)
        decision_scores = scheme.decision_scores(scores)
        names = scheme.decision_names
        lows = floor.as_array()
        highs = np.maximum(decision_scores.max(axis=0), lows) + 1e-9
        study_name = self.study_name or self._default_study_name(scheme, scores, targets)
        study = optuna.create_study(
            study_name=study_name,
            storage=self.storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=self.seed),
        )
        # Start from the target-FPR cut points, so the search is never worse than them.
        if not study.trials:
            study.enqueue_trial({n: float(lo) for n, lo in zip(names, lows)})

        def objective(trial: Any) -> float:
            values = np.array(
                [trial.suggest_float(n, float(lo), float(hi)) for n, lo, hi in zip(names, lows, highs)]
            )
            return self._objective_value(scheme, scores, targets, values)

        finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        remaining = max(self.n_trials - finished, 0)
        if remaining:
            study.optimize(objective, n_trials=remaining)
        best = np.array([study.best_params[n] for n in names])
        details: dict[str, dict[str, Any]] = {
            name: {
                "target_fpr": self.budget.target_for(name),
                "fit_fpr": fit["fit_fpr"],
                "fit_recall": fit["fit_recall"],
                "n_negatives": fit["n_negatives"],
                "fpr_granularity": 1.0 / max(fit["n_negatives"], 1),
            }
            for name, fit in achieved(scheme, scores, targets, best).items()
        }
        start_value = float(study.trials[0].value) if study.trials[0].value is not None else math.nan
        details["_study"] = {
            "name": study_name,
            "storage": self.storage,
            "trials": len(study.trials),
            "objective": self.objective,
            "start_value": start_value,
            "best_value": float(study.best_value),
        }
        console.print(
            f"optuna thresholds: {len(study.trials)} trials ({remaining} new) of study {study_name} in "
            f"{self.storage}; {self.fit_split} {self.objective} {start_value:.4f} at the target-FPR cut "
            f"-> {float(study.best_value):.4f}",
            soft_wrap=True,
        )
        return Thresholds(names, [float(v) for v in best], self.method, self.fit_split, details)
