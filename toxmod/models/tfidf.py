"""TF-IDF models: logistic regression (the fast linear baseline) and XGBoost (the default)."""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.base import clone
from sklearn.feature_selection import SelectKBest, chi2
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.extmath import softmax

from toxmod.data.schemes import LabelScheme, TrainingTask
from toxmod.errors import DamagedFileError
from toxmod.models.base import FitContext, Scorer
from toxmod.models.persistence import (
    UntrustedSetting,
    logistic_from_state,
    logistic_state,
    read_arrays,
    read_json,
    require_keys,
    write_arrays,
)
from toxmod.models.text_features import TfidfFeaturizer, row_offsets
from toxmod.models.trees import SparseRows, TreeEnsemble
from toxmod.progress import Ticker

ARRAYS_FILE = "model.npz"  # the featurizer's idf and the linear models' coefficients
STATE_FILE = "model.json"  # vocabularies, parameters, and what each estimator is
PICKLE_FILE = "model.joblib"  # the older format: a pickle, read only with allow_pickle=true
TREE_WALK_MAX_ROWS = 8  # up to this many texts the trees are walked in numpy, beyond by XGBoost


def _threads(n_jobs: int | None) -> int:
    return int(n_jobs) if n_jobs and n_jobs > 0 else (os.cpu_count() or 1)


def _task_probabilities(estimator: Any, features: sparse.csr_matrix, score_columns: int) -> np.ndarray:
    """A binary label's P(positive) as one column, or one column per class (levels, two included)."""
    if isinstance(estimator, LogisticRegression):
        probabilities = linear_probabilities(estimator, features)
    else:
        probabilities = estimator.predict_proba(features)
    return probabilities[:, 1:2] if score_columns == 1 else probabilities


def linear_decision(model: LogisticRegression, features: sparse.csr_matrix) -> np.ndarray:
    """``model.decision_function(features)``: the same product and sum, without the per-call input
    checks that cost more than the arithmetic when one text is scored."""
    scores = features @ model.coef_.T + model.intercept_
    return scores.reshape(-1) if scores.shape[1] == 1 else scores


def linear_probabilities(model: LogisticRegression, features: sparse.csr_matrix) -> np.ndarray:
    """``model.predict_proba(features)``, computed the way scikit-learn does (sigmoid for two classes,
    softmax for more) from ``linear_decision``."""
    decision = linear_decision(model, features)
    if decision.ndim == 1:
        probability = expit(decision)
        return np.stack([1 - probability, probability], axis=1)
    return softmax(decision, copy=False)


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
        # model.n_jobs when set, else the run's CPU share (hardware.threads, resolved for this process);
        # saved with the model as the threads it was fitted with
        given = self._params["n_jobs"] or (context.hardware.threads if context else None)
        self._params["n_jobs"] = _threads(given)
        features = self.featurizer.fit_transform(list(texts))
        tasks = scheme.training_tasks(targets)
        ticker = Ticker(f"fit {self.kind}, tasks done", len(tasks))
        self.estimators = []
        for done, task in enumerate(tasks, start=1):
            self.estimators.append(self._fit_task(features, task))
            ticker.tick(done, force=len(tasks) > 1)
        self.task_columns = [task.score_columns for task in tasks]
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        features = self.featurizer.transform(list(texts))
        columns = [_task_probabilities(e, features, k) for e, k in zip(self.estimators, self.task_columns)]
        return np.concatenate(columns, axis=1).astype(np.float64)

    def _save_weights(self, directory: Path) -> None:
        arrays, featurizer = self.featurizer.state()
        estimators = []
        for index, estimator in enumerate(self.estimators):
            estimator_arrays, meta = self._estimator_state(estimator, index, directory)
            arrays.update(estimator_arrays)
            estimators.append(meta)
        write_arrays(directory / ARRAYS_FILE, arrays)
        state = {"featurizer": featurizer, "estimators": estimators, "task_columns": self.task_columns}
        (directory / STATE_FILE).write_text(json.dumps(state) + "\n", encoding="utf-8")

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        if not (directory / STATE_FILE).exists() and (directory / PICKLE_FILE).exists():
            return self._load_pickle(directory / PICKLE_FILE, allow_pickle)
        state = read_json(directory / STATE_FILE)
        require_keys(directory / STATE_FILE, state, ("featurizer", "estimators", "task_columns"))
        arrays = read_arrays(directory / ARRAYS_FILE)
        try:
            self.featurizer = TfidfFeaturizer.from_state(arrays, state["featurizer"])
            self.estimators = [
                self._estimator_from_state(arrays, meta, index, directory)
                for index, meta in enumerate(state["estimators"])
            ]
        except UntrustedSetting as error:
            raise DamagedFileError(f"{directory / STATE_FILE}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedFileError(
                f"{directory / STATE_FILE}: does not match {ARRAYS_FILE} ({error!r})"
            ) from None
        self.task_columns = [int(k) for k in state["task_columns"]]
        return None

    def _load_pickle(self, path: Path, allow_pickle: bool) -> None:
        if not allow_pickle:
            raise DamagedFileError(
                f"{path}: a pickle, which runs whatever code it holds when loaded; re-train the run, "
                "or pass allow_pickle=true if you trust whoever made it"
            )
        state = joblib.load(path)
        self.featurizer = state["featurizer"]
        self.estimators = state["estimators"]
        self.task_columns = state.get("task_columns") or [1 if k == 2 else k for k in state["task_classes"]]

    def _estimator_state(
        self, estimator: Any, index: int, directory: Path
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = logistic_state(estimator, f"estimator{index}_")
        return arrays, {"type": "logistic", **meta}

    def _estimator_from_state(
        self, arrays: dict[str, np.ndarray], meta: dict[str, Any], index: int, directory: Path
    ) -> Any:
        return logistic_from_state(arrays, meta, f"estimator{index}_")


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


def out_of_fold_scores(
    estimator: Any, features: sparse.csr_matrix, targets: np.ndarray, folds: StratifiedKFold, name: str
) -> np.ndarray:
    """``cross_val_predict(..., method="decision_function")``, fold by fold so that a long fit says how
    far it is: each held-out fold scored by a clone fitted on the other folds."""
    ticker = Ticker(f"{name}: out-of-fold linear scores, folds", folds.get_n_splits())
    scores: np.ndarray | None = None
    for done, (train, held_out) in enumerate(folds.split(features, targets), start=1):
        fitted = clone(estimator).fit(features[train], targets[train])
        part = fitted.decision_function(features[held_out])
        if scores is None:
            scores = np.zeros((features.shape[0], *part.shape[1:]), dtype=np.float64)
        scores[held_out] = part
        ticker.tick(done)
    assert scores is not None
    return scores


def rounds_ticker(label: str, total: int) -> Any:
    """An XGBoost training callback printing the boosting round now and then (``progress.Ticker``)."""
    from xgboost.callback import TrainingCallback

    class RoundsTicker(TrainingCallback):
        def __init__(self) -> None:
            super().__init__()
            self.ticker = Ticker(label, total)

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.ticker.tick(epoch + 1)
            return False  # never stops training

    return RoundsTicker()


class _StackedXGB:
    """Chi2-selected TF-IDF columns + text statistics (+ out-of-fold linear scores) -> XGBoost.

    ``columns``: the text columns the trees see (None: all of them).
    """

    def __init__(self, n_text: int, columns: np.ndarray | None, linear: Any | None, booster: Any) -> None:
        self.n_text, self.columns, self.linear, self.booster = n_text, columns, linear, booster
        self._tree_column: np.ndarray | None = None
        self._trees: TreeEnsemble | None | bool = False  # False: not read yet

    @property
    def trees(self) -> TreeEnsemble | None:
        """The booster's trees as arrays (None: a model the numpy walk does not cover)."""
        if getattr(self, "_trees", False) is False:  # (absent on an object unpickled from an older format)
            self._trees = TreeEnsemble.from_booster(self.booster.get_booster())
        return self._trees if isinstance(self._trees, TreeEnsemble) else None

    def tree_features(
        self, features: sparse.csr_matrix, linear_scores: np.ndarray | None
    ) -> sparse.csr_matrix:
        """The matrix the trees were trained on (used in training, where the linear scores are
        out-of-fold); ``predict_proba`` builds the same matrix directly."""
        text = features[:, : self.n_text]
        parts = [text[:, self.columns] if self.columns is not None else text, features[:, self.n_text :]]
        if linear_scores is not None:
            parts.append(sparse.csr_matrix(linear_scores.reshape(len(linear_scores), -1)))
        return sparse.hstack(parts, format="csr")

    def _scoring_features(self, features: sparse.csr_matrix) -> SparseRows:
        """``tree_features(features, linear scores)`` by relabelling the stored entries' columns (a
        text column the trees do not see is dropped) instead of slicing and stacking sparse matrices:
        the same entries, values and order, so the trees see the same matrix."""
        if getattr(self, "_tree_column", None) is None:  # (absent on an object from an older pickle)
            n_columns = features.shape[1]
            kept = np.arange(self.n_text) if self.columns is None else np.asarray(self.columns)
            tree_column = np.full(n_columns, -1, dtype=np.int64)
            tree_column[kept] = np.arange(len(kept))
            tree_column[self.n_text :] = len(kept) + np.arange(n_columns - self.n_text)
            self._tree_column, self._tree_width = tree_column, len(kept) + n_columns - self.n_text
        n_rows, width = features.shape[0], self._tree_width
        rows = np.repeat(np.arange(n_rows), np.diff(features.indptr))
        assert self._tree_column is not None
        columns = self._tree_column[features.indices]
        keep = columns >= 0
        rows, columns, values = rows[keep], columns[keep], features.data[keep].astype(np.float64)
        if self.linear is not None:
            scores = np.asarray(linear_decision(self.linear, features), dtype=np.float64).reshape(n_rows, -1)
            score_rows, score_columns = np.nonzero(scores)  # a sparse matrix stores no zeros
            rows = np.concatenate([rows, score_rows])
            columns = np.concatenate([columns, width + score_columns])
            values = np.concatenate([values, scores[score_rows, score_columns]])
            width += scores.shape[1]
        if n_rows > 1:  # the linear scores went last: put every row's entries together again
            order = np.argsort(rows, kind="stable")
            rows, columns, values = rows[order], columns[order], values[order]
        indptr = row_offsets(rows, n_rows)
        return SparseRows(indptr, columns, values, (n_rows, width))

    def predict_proba(self, features: sparse.csr_matrix) -> np.ndarray:
        """Class probabilities, as ``XGBClassifier.predict_proba`` gives them: a few rows by walking
        the trees in numpy (``TreeEnsemble``), more through the booster's ``inplace_predict``."""
        tree_features = self._scoring_features(features)
        if features.shape[0] <= TREE_WALK_MAX_ROWS and self.trees is not None:
            probabilities = self.trees.predict(tree_features)
        else:
            probabilities = self.booster.get_booster().inplace_predict(tree_features.to_csr())
        if probabilities.ndim == 1:
            return np.stack([1 - probabilities, probabilities], axis=1)
        return probabilities


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
        columns = None
        if p["tree_features"] and p["tree_features"] < n_text:
            selector = SelectKBest(chi2, k=p["tree_features"]).fit(features[:, :n_text], task.targets)
            columns = selector.get_support(indices=True)
        linear, linear_scores = None, None
        if p["stack_linear"]:
            linear = logistic_regression(task.n_classes, p["linear_C"], "balanced", p["linear_solver"])
            folds = StratifiedKFold(p["linear_folds"], shuffle=True, random_state=p["seed"])
            linear_scores = out_of_fold_scores(linear, features, task.targets, folds, task.name)
            linear.fit(features, task.targets)
        booster = XGBClassifier(
            n_estimators=p["n_estimators"],
            max_depth=p["max_depth"],
            learning_rate=p["learning_rate"],
            subsample=p["subsample"],
            colsample_bytree=p["colsample_bytree"],
            min_child_weight=p["min_child_weight"],
            tree_method="hist",
            n_jobs=p["n_jobs"],
            random_state=p["seed"],
            callbacks=[rounds_ticker(f"{task.name}: boosting rounds", p["n_estimators"])],
        )
        model = _StackedXGB(n_text, columns, linear, booster)
        booster.fit(model.tree_features(features, linear_scores), task.targets)
        return model

    def _estimator_state(
        self, estimator: _StackedXGB, index: int, directory: Path
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        prefix = f"estimator{index}_"
        booster_file = f"booster{index}.ubj"  # XGBoost's own (non-executable) format
        estimator.booster.save_model(str(directory / booster_file))
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "type": "stacked_xgboost",
            "n_text": estimator.n_text,
            "booster": booster_file,
        }
        if estimator.columns is not None:
            arrays[f"{prefix}columns"] = estimator.columns
        if estimator.linear is not None:
            linear_arrays, meta["linear"] = logistic_state(estimator.linear, f"{prefix}linear_")
            arrays.update(linear_arrays)
        return arrays, meta

    def _estimator_from_state(
        self, arrays: dict[str, np.ndarray], meta: dict[str, Any], index: int, directory: Path
    ) -> _StackedXGB:
        from xgboost import XGBClassifier
        from xgboost.core import XGBoostError

        prefix = f"estimator{index}_"
        booster = XGBClassifier()
        path = directory / meta["booster"]
        if not path.is_file():
            raise DamagedFileError(f"{path}: missing")
        try:
            booster.load_model(str(path))
        except XGBoostError as error:
            raise DamagedFileError(
                f"{path}: not a readable XGBoost model ({str(error).splitlines()[0]})"
            ) from None
        linear = (
            logistic_from_state(arrays, meta["linear"], f"{prefix}linear_") if meta.get("linear") else None
        )
        return _StackedXGB(int(meta["n_text"]), arrays.get(f"{prefix}columns"), linear, booster)
