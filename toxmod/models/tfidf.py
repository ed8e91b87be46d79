"""TF-IDF models: logistic regression (the fast linear baseline) and XGBoost (the default)."""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from scipy import sparse
from sklearn.feature_selection import SelectKBest, chi2
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from toxmod.data.schemes import LabelScheme, TrainingTask
from toxmod.models.base import FitContext, Scorer
from toxmod.models.text_features import TfidfFeaturizer

WEIGHTS_FILE = "model.joblib"


def _threads(n_jobs: int | None) -> int:
    return int(n_jobs) if n_jobs and n_jobs > 0 else (os.cpu_count() or 1)


def _task_probabilities(estimator: Any, features: sparse.csr_matrix, score_columns: int) -> np.ndarray:
    """A binary label's P(positive) as one column, or one column per class (levels, two included)."""
    probabilities = estimator.predict_proba(features)
    return probabilities[:, 1:2] if score_columns == 1 else probabilities


def logistic_regression(
    n_classes: int,
    C: float,
    class_weight: str | None,
    solver: str = "auto",
    max_iter: int = 2000,
    seed: int = 0,
) -> LogisticRegression:
    """L2 logistic regression; ``solver="auto"`` is liblinear for binary tasks (fast on sparse n-grams)
    and lbfgs (multinomial) for multi-class ones."""
    if solver == "auto":
        solver = "liblinear" if n_classes == 2 else "lbfgs"
    return LogisticRegression(
        C=C, class_weight=class_weight, solver=solver, max_iter=max_iter, random_state=seed
    )


class TfidfScorer(Scorer):
    """Shared TF-IDF featurization; subclasses fit one estimator per training task of the scheme."""

    def __init__(self, seed: int = 0, n_jobs: int | None = None, **featurizer_params: Any) -> None:
        """``featurizer_params`` go to ``TfidfFeaturizer`` (n-grams, max_features, min_df, text_stats)."""
        super().__init__()
        self._params: dict[str, Any] = {"seed": seed, "n_jobs": n_jobs, **featurizer_params}
        self.featurizer = TfidfFeaturizer(**featurizer_params)
        self.estimators: list[Any] = []
        self.task_columns: list[int] = []  # score columns each estimator provides

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @abstractmethod
    def _fit_task(self, features: sparse.csr_matrix, task: TrainingTask) -> Any:
        """Fit and return one estimator for ``task``."""

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> TfidfScorer:
        self.scheme = scheme
        features = self.featurizer.fit_transform(list(texts))
        tasks = scheme.training_tasks(targets)
        self.estimators = [self._fit_task(features, task) for task in tasks]
        self.task_columns = [task.score_columns for task in tasks]
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        features = self.featurizer.transform(list(texts))
        columns = [_task_probabilities(e, features, k) for e, k in zip(self.estimators, self.task_columns)]
        return np.concatenate(columns, axis=1).astype(np.float64)

    def _save_weights(self, directory: Path) -> None:
        joblib.dump(
            {"featurizer": self.featurizer, "estimators": self.estimators, "task_columns": self.task_columns},
            directory / WEIGHTS_FILE,
        )

    def _load_weights(self, directory: Path) -> None:
        state = joblib.load(directory / WEIGHTS_FILE)
        self.featurizer = state["featurizer"]
        self.estimators = state["estimators"]
        self.task_columns = state["task_columns"]


class TfidfLogRegScorer(TfidfScorer):
    """TF-IDF -> logistic regression: one binary model per label, or one multinomial model for levels."""

    kind = "tfidf_logreg"

    def __init__(
        self,
        C: float = 4.0,
        class_weight: str | None = "balanced",
        solver: str = "auto",
        max_iter: int = 2000,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._params.update({"C": C, "class_weight": class_weight, "solver": solver, "max_iter": max_iter})

    def _fit_task(self, features: sparse.csr_matrix, task: TrainingTask) -> Any:
        p = self._params
        model = logistic_regression(
            task.n_classes, p["C"], p["class_weight"], p["solver"], p["max_iter"], p["seed"]
        )
        return model.fit(features, task.targets)


class _StackedXGB:
    """Chi2-selected TF-IDF columns + text statistics (+ out-of-fold linear scores) -> XGBoost."""

    def __init__(self, n_text: int, selector: Any | None, linear: Any | None, booster: Any) -> None:
        self.n_text, self.selector, self.linear, self.booster = n_text, selector, linear, booster

    def tree_features(
        self, features: sparse.csr_matrix, linear_scores: np.ndarray | None
    ) -> sparse.csr_matrix:
        text = features[:, : self.n_text]
        parts = [
            self.selector.transform(text) if self.selector is not None else text,
            features[:, self.n_text :],
        ]
        if linear_scores is not None:
            parts.append(sparse.csr_matrix(linear_scores.reshape(len(linear_scores), -1)))
        return sparse.hstack(parts, format="csr")

    def predict_proba(self, features: sparse.csr_matrix) -> np.ndarray:
        linear_scores = self.linear.decision_function(features) if self.linear is not None else None
        return self.booster.predict_proba(self.tree_features(features, linear_scores))


class TfidfXGBoostScorer(TfidfScorer):
    """TF-IDF + text statistics -> XGBoost (binary per label, ``multi:softprob`` for levels).

    ``stack_linear`` adds out-of-fold logistic-regression scores as tree features: the trees then
    refine a strong linear ranking with the numeric features and n-gram interactions.
    """

    kind = "tfidf_xgboost"

    def __init__(
        self,
        n_estimators: int = 300,
        max_depth: int = 4,
        learning_rate: float = 0.05,
        subsample: float = 0.9,
        colsample_bytree: float = 0.5,
        min_child_weight: float = 3.0,
        tree_features: int | None = 20_000,
        stack_linear: bool = True,
        linear_C: float = 4.0,
        linear_folds: int = 5,
        linear_solver: str = "lbfgs",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._params.update(
            {
                "n_estimators": n_estimators,
                "max_depth": max_depth,
                "learning_rate": learning_rate,
                "subsample": subsample,
                "colsample_bytree": colsample_bytree,
                "min_child_weight": min_child_weight,
                "tree_features": tree_features,
                "stack_linear": stack_linear,
                "linear_C": linear_C,
                "linear_folds": linear_folds,
                "linear_solver": linear_solver,
            }
        )

    def _fit_task(self, features: sparse.csr_matrix, task: TrainingTask) -> Any:
        from xgboost import XGBClassifier

        p = self._params
        n_text = features.shape[1] - self.featurizer.n_stats
        selector = None
        if p["tree_features"] and p["tree_features"] < n_text:
            selector = SelectKBest(chi2, k=p["tree_features"]).fit(features[:, :n_text], task.targets)
        linear, linear_scores = None, None
        if p["stack_linear"]:
            linear = logistic_regression(task.n_classes, p["linear_C"], "balanced", p["linear_solver"])
            folds = StratifiedKFold(p["linear_folds"], shuffle=True, random_state=p["seed"])
            linear_scores = cross_val_predict(
                linear, features, task.targets, cv=folds, method="decision_function"
            )
            linear.fit(features, task.targets)
        booster = XGBClassifier(
            n_estimators=p["n_estimators"],
            max_depth=p["max_depth"],
            learning_rate=p["learning_rate"],
            subsample=p["subsample"],
            colsample_bytree=p["colsample_bytree"],
            min_child_weight=p["min_child_weight"],
            tree_method="hist",
            n_jobs=_threads(p["n_jobs"]),
            random_state=p["seed"],
        )
        model = _StackedXGB(n_text, selector, linear, booster)
        booster.fit(model.tree_features(features, linear_scores), task.targets)
        return model
