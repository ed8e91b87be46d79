"""Calibration: thresholds chosen on calibration data."""

from toxmod.calibration.thresholds import (
    MaxF1Thresholds,
    OptunaThresholds,
    TargetFPRThresholds,
    Thresholds,
    threshold_at_fpr,
)

__all__ = ["MaxF1Thresholds", "OptunaThresholds", "TargetFPRThresholds", "Thresholds", "threshold_at_fpr"]
