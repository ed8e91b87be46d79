"""Per-decision thresholds chosen on calibration data (``threshold=``). Temperature scaling of scores
is a different idea and lives with the models (``models/temperature.py``, ``calibration=``)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.thresholds.cuts import Thresholds, threshold_at_fpr
from toxmod.thresholds.methods import MaxF1Thresholds, OptunaThresholds, TargetFPRThresholds


class Thresholder(Protocol):
    """A ``threshold=`` method: checks its settings against the scheme, then fits on calibration data.

    ``budget`` is the per-decision FPR targets (``TargetFPRThresholds``), None for a method without one.
    """

    method: str
    fit_split: str

    @property
    def budget(self) -> TargetFPRThresholds | None: ...

    def check(self, scheme: LabelScheme) -> None: ...

    def fit(self, scheme: LabelScheme, scores: np.ndarray, targets: np.ndarray) -> Thresholds: ...


__all__ = [
    "MaxF1Thresholds",
    "OptunaThresholds",
    "TargetFPRThresholds",
    "Thresholder",
    "Thresholds",
    "threshold_at_fpr",
]
