"""Scoring a split through the scoring interface, timed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from toxmod.data.datasets import LabeledDataset
from toxmod.models.base import Scorer


@dataclass(frozen=True)
class ScoredSplit:
    """A split's encoded targets, the model's scores for it, and how long scoring took."""

    targets: np.ndarray
    scores: np.ndarray
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return len(self.targets) / self.seconds if self.seconds > 0 else float("nan")


def score_split(scorer: Scorer, part: LabeledDataset) -> ScoredSplit:
    """Score one split through ``predict_scores`` only, timing it."""
    start = time.perf_counter()
    scores = scorer.predict_scores(list(part.texts))
    return ScoredSplit(part.targets, scores, time.perf_counter() - start)
