"""The one scoring interface every model kind implements: texts in, per-label scores out."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from toxmod.data.auxiliary import AuxiliaryTargets
from toxmod.data.schemes import LabelScheme, scheme_from_description

SCORER_FILE = "scorer.json"


@dataclass
class FitContext:
    """What trainer-driven models use beyond texts and targets; classical models ignore it.

    ``valid_*`` feed per-epoch validation (checkpoint selection at ``target_fpr``); ``trainer``,
    ``checkpoint`` and ``early_stopping`` are the root config's groups; ``resume_from`` is a
    checkpoint to continue from; ``tracker`` receives epoch curves; ``auxiliary`` holds training-only
    extra targets of the train rows (``data.auxiliary``), for models that train extra heads.
    """

    run_dir: Path | None = None
    tracker: Any = None
    hardware: Any = None
    valid_texts: Sequence[str] | None = None
    valid_targets: np.ndarray | None = None
    target_fpr: float = 0.02
    trainer: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    early_stopping: Mapping[str, Any] | None = None
    resume_from: Path | None = None
    callbacks: list[Any] = field(default_factory=list)  # extra Lightning callbacks (profiling, ...)
    auxiliary: AuxiliaryTargets | None = None


class Scorer(ABC):
    """A trained model behind a uniform interface.

    ``predict_scores`` returns a float array of shape ``(n_texts, len(scheme.output_names))``:
    independent per-label probabilities for a multi-label scheme, one probability per level
    (rows sum to 1) for a levels scheme. Evaluation, thresholds and latency see nothing else.
    """

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.scheme: LabelScheme | None = None

    @abstractmethod
    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> Scorer:
        """Train on ``texts`` with encoded ``targets`` under ``scheme``; returns self."""

    @abstractmethod
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per-output scores for ``texts``."""

    @abstractmethod
    def _save_weights(self, directory: Path) -> None:
        """Write the model's own files into ``directory``."""

    @abstractmethod
    def _load_weights(self, directory: Path) -> None:
        """Read back what ``_save_weights`` wrote."""

    def params(self) -> dict[str, Any]:
        """Constructor parameters, stored so ``load`` rebuilds the same object."""
        return {}

    def save(self, directory: str | Path) -> Path:
        """Write the model to ``directory`` (created); ``load_scorer`` reads it back bit-exactly."""
        if self.scheme is None:
            raise RuntimeError("save() called before fit()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_weights(directory)
        description = {"kind": self.kind, "params": self.params(), "scheme": self.scheme.describe()}
        (directory / SCORER_FILE).write_text(json.dumps(description, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Scorer:
        """Rebuild a saved model of this class."""
        directory = Path(directory)
        description = json.loads((directory / SCORER_FILE).read_text())
        scorer = cls(**description.get("params", {}))
        scorer.scheme = scheme_from_description(description["scheme"])
        scorer._load_weights(directory)
        return scorer


def artifact_size_bytes(directory: str | Path) -> int:
    """Total size of the files in a saved model directory."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def batched(texts: Sequence[str], batch_size: int) -> list[Sequence[str]]:
    """Consecutive batches of ``texts``."""
    return [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
