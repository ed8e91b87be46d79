"""Label schemes: how targets are encoded, thresholded and reported.

Two schemes are first class and every other module talks to them through this interface:

* ``MultiLabelScheme`` -- independent binary labels (``scam``, ``topic_crypto``; a binary task is a
  multi-label task with one label). An optional ``none_label`` (e.g. ``clean``) is derived as
  "no label predicted" and reported beside the others.
* ``LevelsScheme`` -- ordinal levels (``safe < mild < toxic < severe``). Models output one probability
  per level; thresholds act on the cumulative scores P(level >= k) for every non-base level, and the
  predicted level is the highest level whose cut is passed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toxmod.errors import DataError


@dataclass(frozen=True)
class TrainingTask:
    """One estimator's worth of work: a named target column, its classes, and its score columns.

    ``score_columns`` is how many of the scheme's outputs the estimator provides: 1 for a binary
    label (P(positive)), one per class for levels -- also when there are only two levels.
    """

    name: str
    targets: np.ndarray
    n_classes: int
    score_columns: int


@dataclass(frozen=True)
class ReportView:
    """Per-label binary views used by the evaluator (one column per reported label)."""

    names: list[str]
    targets: np.ndarray  # (n, R) bool
    predictions: np.ndarray  # (n, R) bool
    scores: np.ndarray  # (n, R) float, for ranking metrics


class LabelScheme(ABC):
    """What a label scheme must answer; implementations below."""

    kind: str
    primary_label: str
    # Whether each decision's threshold can be tuned alone (independent labels), or the decisions act
    # together on one prediction (level cuts: the highest passed cut is the level).
    decisions_independent: bool

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """Names of the model's score columns, in order."""

    @property
    @abstractmethod
    def report_names(self) -> list[str]:
        """Names of the labels the evaluator reports (outputs plus any derived label)."""

    @property
    @abstractmethod
    def decision_names(self) -> list[str]:
        """Names of the binary decisions that get a threshold, in order."""

    def decision_for(self, report_name: str) -> str | None:
        """The thresholded decision shown beside a reported label (None for derived labels)."""
        return report_name if report_name in self.decision_names else None

    @property
    def primary_decision(self) -> str:
        """The thresholded decision of the primary label (the last decision when it has none)."""
        return self.decision_for(self.primary_label) or self.decision_names[-1]

    @abstractmethod
    def training_tasks(self, targets: np.ndarray) -> list[TrainingTask]:
        """Split encoded targets into the estimators a classical model fits."""

    @abstractmethod
    def decision_scores(self, scores: np.ndarray) -> np.ndarray:
        """(n, D) scores of the thresholded binary decisions."""

    @abstractmethod
    def decision_targets(self, targets: np.ndarray) -> np.ndarray:
        """(n, D) bool truth of the thresholded binary decisions."""

    @abstractmethod
    def predict(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """Encoded predictions (same shape as targets) from scores and per-decision thresholds."""

    @abstractmethod
    def report_view(self, scores: np.ndarray, targets: np.ndarray, predictions: np.ndarray) -> ReportView:
        """Per-label binary targets / predictions / scores for the evaluator."""

    headline_name: str

    @abstractmethod
    def example_correct(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """(n,) bool: is each example's prediction entirely right."""

    def headline(self, targets: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        """The whole-example metric: exact match (multi-label) or accuracy (levels)."""
        return {self.headline_name: float(np.mean(self.example_correct(targets, predictions)))}

    @abstractmethod
    def calibration_pairs(self, scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, outcome) pairs for expected calibration error."""

    def confusion(
        self, targets: np.ndarray, predictions: np.ndarray
    ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """``(class names, true index, predicted index)`` for a confusion matrix over classes that
        exclude each other (levels); None when the labels are independent."""
        return None

    @abstractmethod
    def support(self, targets: np.ndarray) -> dict[str, int]:
        """Positive count per reported label."""

    @abstractmethod
    def stratification_keys(self, targets: np.ndarray) -> np.ndarray:
        """One hashable key per row to stratify splits on."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-able description, stored with models and manifests."""


MAX_LABEL_LENGTH = 100


def check_label_name(name: Any) -> str:
    """A label or level name: it names metrics (``holdout/<label>/recall``), files and columns, so it
    is 1 to 100 printable characters without ``/`` or ``\\``; else one line naming it."""
    text = str(name)
    if not text.strip() or len(text) > MAX_LABEL_LENGTH:
        raise DataError(f"label name {text[:60]!r}: expected 1 to {MAX_LABEL_LENGTH} characters")
    bad = next((c for c in text if not c.isprintable() or c in "/\\"), None)
    if bad is not None:
        raise DataError(f"label name {text[:60]!r}: holds {bad!r}; a label names metrics, files and columns")
    return text


@dataclass
class MultiLabelScheme(LabelScheme):
    """Independent binary labels; ``none_label`` names the derived "no label" class (optional)."""

    labels: list[str]
    none_label: str | None = None
    primary_label: str = ""
    kind: str = field(default="multilabel", init=False)
    headline_name: str = field(default="exact_match", init=False)
    decisions_independent: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.labels = [check_label_name(label) for label in self.labels]
        if self.none_label is not None:
            check_label_name(self.none_label)
        if not self.labels:
            raise ValueError("a multi-label scheme needs at least one label")
        if not self.primary_label:
            self.primary_label = self.labels[0]

    @property
    def output_names(self) -> list[str]:
        return list(self.labels)

    @property
    def report_names(self) -> list[str]:
        return self.labels + ([self.none_label] if self.none_label else [])

    @property
    def decision_names(self) -> list[str]:
        return list(self.labels)

    def training_tasks(self, targets: np.ndarray) -> list[TrainingTask]:
        return [TrainingTask(label, targets[:, j].astype(int), 2, 1) for j, label in enumerate(self.labels)]

    def decision_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64)

    def decision_targets(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets).astype(bool)

    def predict(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        return (np.asarray(scores) >= np.asarray(thresholds)[None, :]).astype(np.int64)

    def _with_none(self, matrix: np.ndarray) -> np.ndarray:
        if self.none_label is None:
            return matrix
        return np.concatenate([matrix, ~matrix.any(axis=1, keepdims=True)], axis=1)

    def report_view(self, scores: np.ndarray, targets: np.ndarray, predictions: np.ndarray) -> ReportView:
        scores = np.asarray(scores, dtype=np.float64)
        if self.none_label:
            scores = np.concatenate([scores, 1.0 - scores.max(axis=1, keepdims=True)], axis=1)
        return ReportView(
            names=self.report_names,
            targets=self._with_none(np.asarray(targets).astype(bool)),
            predictions=self._with_none(np.asarray(predictions).astype(bool)),
            scores=scores,
        )

    def example_correct(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        return np.all(np.asarray(targets) == np.asarray(predictions), axis=1)

    def calibration_pairs(self, scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets, dtype=np.float64).ravel()

    def support(self, targets: np.ndarray) -> dict[str, int]:
        counts = {label: int(targets[:, j].sum()) for j, label in enumerate(self.labels)}
        if self.none_label:
            counts[self.none_label] = int((targets.sum(axis=1) == 0).sum())
        return counts

    def stratification_keys(self, targets: np.ndarray) -> np.ndarray:
        return np.array(["".join(map(str, row)) for row in np.asarray(targets, dtype=int)])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "none_label": self.none_label,
            "primary_label": self.primary_label,
        }


@dataclass
class LevelsScheme(LabelScheme):
    """Ordinal levels, lowest (benign) first; targets are level indices."""

    levels: list[str]
    primary_label: str = ""
    kind: str = field(default="levels", init=False)
    headline_name: str = field(default="accuracy", init=False)
    decisions_independent: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.levels = [check_label_name(level) for level in self.levels]
        if len(self.levels) < 2:
            raise ValueError("a levels scheme needs at least two levels")
        if not self.primary_label:
            self.primary_label = self.levels[-1]

    @property
    def output_names(self) -> list[str]:
        return list(self.levels)

    @property
    def report_names(self) -> list[str]:
        return list(self.levels)

    @property
    def decision_names(self) -> list[str]:
        return [f"at_least_{level}" for level in self.levels[1:]]

    def decision_for(self, report_name: str) -> str | None:
        name = f"at_least_{report_name}"
        return name if name in self.decision_names else None

    def training_tasks(self, targets: np.ndarray) -> list[TrainingTask]:
        k = len(self.levels)
        return [TrainingTask("level", np.asarray(targets, dtype=int), k, k)]

    def decision_scores(self, scores: np.ndarray) -> np.ndarray:
        # P(level >= k) for k = 1..K-1: reverse cumulative sum over the level axis.
        cumulative = np.cumsum(np.asarray(scores, dtype=np.float64)[:, ::-1], axis=1)[:, ::-1]
        return np.clip(cumulative[:, 1:], 0.0, 1.0)

    def decision_targets(self, targets: np.ndarray) -> np.ndarray:
        targets = np.asarray(targets)
        return np.stack([targets >= k for k in range(1, len(self.levels))], axis=1)

    def predict(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        passed = self.decision_scores(scores) >= np.asarray(thresholds)[None, :]
        # The predicted level is the highest level whose cut is passed (0 when none is).
        highest = np.where(passed, np.arange(1, len(self.levels))[None, :], 0)
        return highest.max(axis=1).astype(np.int64)

    def report_view(self, scores: np.ndarray, targets: np.ndarray, predictions: np.ndarray) -> ReportView:
        k = len(self.levels)
        onehot = np.eye(k, dtype=bool)
        return ReportView(
            names=self.report_names,
            targets=onehot[np.asarray(targets, dtype=int)],
            predictions=onehot[np.asarray(predictions, dtype=int)],
            scores=np.asarray(scores, dtype=np.float64),
        )

    def example_correct(self, targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        return np.asarray(targets) == np.asarray(predictions)

    def confusion(
        self, targets: np.ndarray, predictions: np.ndarray
    ) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        return list(self.levels), np.asarray(targets, dtype=int), np.asarray(predictions, dtype=int)

    def calibration_pairs(self, scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(scores, dtype=np.float64)
        predicted = scores.argmax(axis=1)
        return scores.max(axis=1), (predicted == np.asarray(targets)).astype(np.float64)

    def support(self, targets: np.ndarray) -> dict[str, int]:
        counts = np.bincount(np.asarray(targets, dtype=int), minlength=len(self.levels))
        return {level: int(c) for level, c in zip(self.levels, counts)}

    def stratification_keys(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=int).astype(str)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "levels": self.levels, "primary_label": self.primary_label}


SCHEME_CLASSES: dict[str, type[LabelScheme]] = {"multilabel": MultiLabelScheme, "levels": LevelsScheme}


def scheme_from_description(description: dict[str, Any]) -> LabelScheme:
    """Rebuild a scheme saved with ``describe()``."""
    fields = dict(description)
    kind = fields.pop("kind")
    if kind not in SCHEME_CLASSES:
        raise ValueError(f"unknown label scheme kind {kind!r}; expected one of {sorted(SCHEME_CLASSES)}")
    return SCHEME_CLASSES[kind](**fields)
