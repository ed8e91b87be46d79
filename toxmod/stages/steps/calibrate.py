"""Step 6 (optional, ``calibration=temperature``): temperature scaling of the trained model's scores,
fitted on valid by NLL. Thresholds are a later step (``score``); this only reshapes scores."""

from __future__ import annotations

from toxmod.data import LabeledDataset
from toxmod.errors import ConfigError
from toxmod.evaluation.metrics import calibration_change
from toxmod.models import Scorer
from toxmod.models.calibrated import TemperatureScaled
from toxmod.progress import console
from toxmod.runs.record import RunDir, write_json
from toxmod.spec import CalibrationSpec


def calibrate(
    settings: CalibrationSpec, scorer: Scorer, valid: LabeledDataset, run: RunDir
) -> tuple[Scorer, dict[str, float]]:
    """The trained model with temperatures fitted on valid, its valid ECE before/after, and the run's
    ``calibration.json``; with ``calibration.method=none`` the model as it is and no metrics."""
    if settings.method == "none":
        return scorer, {}
    if not len(valid):
        raise ConfigError("calibration=temperature fits on valid, and valid is empty (use calibration=none)")
    scaled = TemperatureScaled.fit_on_valid(scorer, list(valid.texts), valid.targets)
    temperatures, valid_scores = scaled.temperatures, scaled.valid_scores
    assert temperatures is not None and valid_scores is not None  # fit_on_valid sets both
    calibrated = temperatures.apply(valid.scheme, valid_scores)
    ece = calibration_change(valid.scheme, valid_scores, calibrated, valid.targets)
    metrics = {f"valid/ece_{when}_calibration": value for when, value in ece.items()}
    metrics.update(
        {f"calibration/temperature/{n}": v for n, v in zip(temperatures.names, temperatures.values)}
    )
    write_json(run / RunDir.CALIBRATION, {**temperatures.to_json(), "valid_ece": ece})
    console.print(f"calibration=temperature: valid ECE {ece['before']:.4f} -> {ece['after']:.4f}")
    return scaled, metrics
