"""The ``calibration`` group: whether the trained model's scores are reshaped before thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from toxmod.errors import ConfigError
from toxmod.spec.fields import Spec, setting

METHODS = ("none", "temperature")


@dataclass(frozen=True)
class CalibrationSpec(Spec):
    """``calibration.method``: none, or temperature scaling fitted on valid after training."""

    GROUP = "calibration"

    method: str = setting()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"calibration.method={self.method!r}: expected one of {list(METHODS)}")
