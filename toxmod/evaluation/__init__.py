"""Evaluation: metrics of a split at chosen thresholds."""

from toxmod.evaluation.metrics import evaluate_predictions, expected_calibration_error

__all__ = ["evaluate_predictions", "expected_calibration_error"]
