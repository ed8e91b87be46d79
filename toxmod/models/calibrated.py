"""``calibration=temperature``: any trained model with temperature scaling fitted on valid.

The wrapped model is saved inside this one (``inner/``) and the temperatures beside it
(``calibration.json``), so the run reloads with the same calibrated scores. Per-label temperatures
keep each label's ranking (ROC-AUC and threshold decisions are unchanged); one temperature over the
levels keeps the argmax. What changes is what the probabilities mean: ECE on valid before and after
is recorded, and thresholds are fitted on the calibrated scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.errors import DamagedFileError
from toxmod.models.base import Scorer
from toxmod.models.capabilities import LayerSource, OnDevice, encoder_layers, place
from toxmod.models.temperature import Temperatures, fit_temperatures

INNER_DIR = "inner"
CALIBRATION_FILE = "calibration.json"


class TemperatureScaled(Scorer, OnDevice, LayerSource):
    """A trained model whose logits are divided by temperatures fitted on valid by NLL."""

    kind = "temperature_scaled"
    opening_settings = None  # the models inside take the opener's settings

    def __init__(self, inner: Scorer | None = None, temperatures: Temperatures | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.temperatures = temperatures
        self.valid_scores: np.ndarray | None = None  # inner's valid scores when fitted (not saved)
        if inner is not None:
            self.scheme = inner.scheme

    @classmethod
    def fit_on_valid(cls, inner: Scorer, texts: Sequence[str], targets: np.ndarray) -> TemperatureScaled:
        """``inner`` with temperatures fitted on valid (``texts``, ``targets``) by NLL."""
        scores = inner.predict_scores(list(texts))
        scaled = cls(inner, fit_temperatures(inner.label_scheme, scores, np.asarray(targets)))
        scaled.fit_report = inner.fit_report
        scaled.valid_scores = scores
        return scaled

    def fit(self, *args: Any, **kwargs: Any) -> TemperatureScaled:
        """Not trained itself: train the inner model, then ``TemperatureScaled.fit_on_valid``."""
        raise NotImplementedError("train the inner model, then TemperatureScaled.fit_on_valid")

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        assert self.inner is not None and self.temperatures is not None, "predict_scores() before load()"
        return self.temperatures.apply(self.label_scheme, self.inner.predict_scores(texts))

    @property
    def parameter_count(self) -> int | None:
        return self.inner.parameter_count if self.inner is not None else None

    @property
    def neural_models(self) -> int:
        return self.inner.neural_models if self.inner is not None else 0

    @property
    def encoder_layers(self) -> int:
        return encoder_layers(self.inner)

    def layer_representations(self, texts: Sequence[str], layers: Sequence[int]) -> np.ndarray:
        assert isinstance(self.inner, LayerSource), "layer_representations() of a model without layers"
        return self.inner.layer_representations(texts, layers)

    def place_on(self, hardware: Any) -> None:
        place(self.inner, hardware)

    def _save_weights(self, directory: Path) -> None:
        assert self.inner is not None and self.temperatures is not None, "_save_weights() before fit"
        self.inner.save(directory / INNER_DIR)
        self.temperatures.save(directory / CALIBRATION_FILE)

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        from toxmod.models import load_scorer  # the registry imports this module

        self.inner = load_scorer(directory / INNER_DIR, allow_pickle)
        self.temperatures = Temperatures.load(directory / CALIBRATION_FILE)
        if len(self.temperatures.values) not in (1, len(self.label_scheme.output_names)):
            count = len(self.temperatures.values)
            raise DamagedFileError(f"{directory / CALIBRATION_FILE}: {count} temperatures for this scheme")
