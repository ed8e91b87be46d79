"""Training objectives, one per label scheme: per-label BCE (multi-label) or cross-entropy (levels).

The scheme's ``kind`` picks the objective from ``OBJECTIVES``; nothing else in the neural code
branches on the scheme.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError

AUTO_WEIGHT_LIMIT = 100.0

LabelWeights = str | Mapping[str, float] | Sequence[float] | None


class Objective(ABC):
    """Loss and output activation of one label scheme; ``weights`` is one weight per output (or None)."""

    def __init__(self, scheme: LabelScheme, weights: np.ndarray | None = None) -> None:
        self.scheme = scheme
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    @property
    def n_outputs(self) -> int:
        return len(self.scheme.output_names)

    @abstractmethod
    def target_tensor(self, targets: np.ndarray) -> torch.Tensor:
        """Encoded numpy targets as the tensor the loss expects."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores in the scoring interface's convention (per-label or per-level probabilities)."""

    @staticmethod
    @abstractmethod
    def auto_weights(scheme: LabelScheme, targets: np.ndarray) -> np.ndarray:
        """Weights derived from the training split's support."""


class MultiLabelBCE(Objective):
    """Independent sigmoid per label; weights are BCE ``pos_weight`` (auto: negatives / positives)."""

    def target_tensor(self, targets: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(targets), dtype=torch.float32)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weights = None if self.weights is None else self.weights.to(logits.device)
        return functional.binary_cross_entropy_with_logits(
            logits.float(), targets.float(), pos_weight=weights
        )

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    @staticmethod
    def auto_weights(scheme: LabelScheme, targets: np.ndarray) -> np.ndarray:
        return negatives_per_positive(targets)


def negatives_per_positive(targets: np.ndarray) -> np.ndarray:
    """Per-column BCE ``pos_weight`` from binary targets: negatives / positives, clipped to [1, 100]."""
    positives = np.asarray(targets, dtype=np.float64).sum(axis=0)
    negatives = len(targets) - positives
    return np.clip(negatives / np.maximum(positives, 1.0), 1.0, AUTO_WEIGHT_LIMIT)


class LevelsCrossEntropy(Objective):
    """Softmax over levels; weights are per-class CE weights (auto: n / (K * count), like sklearn)."""

    def target_tensor(self, targets: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(targets), dtype=torch.long)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weights = None if self.weights is None else self.weights.to(logits.device)
        return functional.cross_entropy(logits.float(), targets.long(), weight=weights)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)

    @staticmethod
    def auto_weights(scheme: LabelScheme, targets: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.asarray(targets, dtype=int), minlength=len(scheme.output_names))
        balanced = len(targets) / (len(counts) * np.maximum(counts, 1))
        return np.clip(balanced, 1.0 / AUTO_WEIGHT_LIMIT, AUTO_WEIGHT_LIMIT)


OBJECTIVES: dict[str, type[Objective]] = {"multilabel": MultiLabelBCE, "levels": LevelsCrossEntropy}


def resolve_label_weights(
    spec: LabelWeights, objective_class: type[Objective], scheme: LabelScheme, targets: np.ndarray
) -> np.ndarray | None:
    """``auto`` (from train support), None/``none``, a ``{output: weight}`` mapping or a list -> array."""
    names = scheme.output_names
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if isinstance(spec, str):
        if spec != "auto":
            raise ConfigError(f"model.label_weights={spec!r}; expected auto, none, a list or a mapping")
        return objective_class.auto_weights(scheme, targets)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConfigError(f"model.label_weights names unknown outputs {unknown}; outputs are {names}")
        return np.array([float(spec.get(name, 1.0)) for name in names])
    values = np.asarray(list(spec), dtype=np.float64)
    if values.shape != (len(names),):
        raise ConfigError(f"model.label_weights has {len(values)} values; the outputs are {names}")
    return values


def objective_for(scheme: LabelScheme, label_weights: LabelWeights, train_targets: np.ndarray) -> Objective:
    """The objective of ``scheme`` with weights resolved against the training targets."""
    objective_class = OBJECTIVES[scheme.kind]
    weights = resolve_label_weights(label_weights, objective_class, scheme, train_targets)
    return objective_class(scheme, weights)
