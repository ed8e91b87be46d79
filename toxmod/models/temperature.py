"""Temperature scaling: scores divided in logit space by a temperature fitted on valid by NLL.

One temperature per label for a multi-label scheme (each label's sigmoid is its own model), one for
all levels of a levels scheme (a softmax shares one scale). It works on any model's scores, so
ensembles of classical and neural members calibrate the same way: scores go to logits through the
scheme's link (logit for sigmoids, log for a softmax), are divided by T, and come back.
Used by ensembles (members combined as calibrated logits) and by distillation (the teacher's outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

from toxmod.data.schemes import LabelScheme
from toxmod.errors import DamagedFileError
from toxmod.files import read_json, require_keys

EPSILON = 1e-7
LOG_T_RANGE = (np.log(0.05), np.log(20.0))


class SigmoidLink:
    """Independent per-label probabilities: logits are log-odds, one temperature per column."""

    per_column = True

    def to_logits(self, scores: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(scores, dtype=np.float64), EPSILON, 1 - EPSILON)
        return np.log(p) - np.log1p(-p)

    def to_scores(self, logits: np.ndarray) -> np.ndarray:
        return expit(logits)

    def nll(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Mean binary cross-entropy of one column."""
        y = np.asarray(targets, dtype=np.float64)
        return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


class SoftmaxLink:
    """One distribution over levels: logits are log-probabilities, one temperature for all."""

    per_column = False

    def to_logits(self, scores: np.ndarray) -> np.ndarray:
        return np.log(np.clip(np.asarray(scores, dtype=np.float64), EPSILON, 1.0))

    def to_scores(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, axis=1)

    def nll(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy of the level index targets."""
        rows = np.arange(len(targets))
        return float(-np.mean(log_softmax(logits, axis=1)[rows, np.asarray(targets, dtype=np.int64)]))


LINKS: dict[str, SigmoidLink | SoftmaxLink] = {"multilabel": SigmoidLink(), "levels": SoftmaxLink()}


def link_for(scheme: LabelScheme) -> SigmoidLink | SoftmaxLink:
    return LINKS[scheme.kind]


@dataclass(frozen=True)
class Temperatures:
    """Fitted temperatures (``names``: the scheme's outputs, or ``["all"]`` for levels)."""

    names: list[str]
    values: list[float]
    fit_split: str = "valid"

    def apply_to_logits(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, dtype=np.float64) / np.asarray(self.values)[None, :]

    def apply(self, scheme: LabelScheme, scores: np.ndarray) -> np.ndarray:
        """Calibrated scores in the scoring interface's convention."""
        link = link_for(scheme)
        return link.to_scores(self.apply_to_logits(link.to_logits(scores)))

    def to_json(self) -> dict[str, Any]:
        return {"fit_split": self.fit_split, "temperatures": dict(zip(self.names, self.values))}

    def save(self, path: Path) -> Path:
        import json

        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Temperatures:
        return cls.from_json(read_json(path), path)

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Temperatures:
        """What ``to_json`` wrote, read from ``path`` (a damaged entry is a one-line error naming it)."""
        require_keys(path, data, ("temperatures",))
        values = data["temperatures"]
        if not isinstance(values, dict) or not all(
            isinstance(v, (int, float)) and v > 0 for v in values.values()
        ):
            raise DamagedFileError(f"{path}: temperatures must be positive numbers, got {values}")
        return cls(list(values), [float(v) for v in values.values()], str(data.get("fit_split", "valid")))


def fit_temperatures(
    scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray, fit_split: str = "valid"
) -> Temperatures:
    """The temperatures minimizing NLL of ``targets`` (bounded search over log T in [0.05, 20])."""
    link = link_for(scheme)
    logits = link.to_logits(scores)
    targets = np.asarray(targets)

    def best(column_logits: np.ndarray, column_targets: np.ndarray) -> float:
        result = minimize_scalar(
            lambda log_t: link.nll(column_logits / np.exp(log_t), column_targets),
            bounds=LOG_T_RANGE,
            method="bounded",
            options={"xatol": 1e-6},
        )
        return float(np.exp(result.x))

    if link.per_column:
        values = [best(logits[:, j], targets[:, j]) for j in range(logits.shape[1])]
        return Temperatures(list(scheme.output_names), values, fit_split)
    return Temperatures(["all"], [best(logits, targets)], fit_split)
