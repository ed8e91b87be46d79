"""Calibration: thresholds chosen on calibration data."""

from toxmod.calibration.thresholds import (
    OptunaThresholds,
    TargetFPRThresholds,
    Thresholds,
    threshold_at_fpr,
)

__all__ = ["OptunaThresholds", "TargetFPRThresholds", "Thresholds", "threshold_at_fpr"]
