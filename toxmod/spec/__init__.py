"""Typed, frozen specifications of the config groups (see ``fields`` for how a key is declared)."""

from toxmod.spec.calibration import CalibrationSpec
from toxmod.spec.data import DataSpec
from toxmod.spec.evaluation import EvaluationSpec
from toxmod.spec.fields import Spec, declared, group_defaults, setting
from toxmod.spec.hardware import HardwareSpec
from toxmod.spec.limits import LimitsSpec
from toxmod.spec.paths import PathsSpec
from toxmod.spec.predict import PredictSpec
from toxmod.spec.split import SplitSpec
from toxmod.spec.training import (
    CheckpointSpec,
    CrossFitSpec,
    EarlyStoppingSpec,
    LatencySpec,
    TeacherSpec,
)

# Every declared group: the ranges checked on the command line and the job's free keys come from here.
SPECS: tuple[type[Spec], ...] = (
    DataSpec,
    SplitSpec,
    HardwareSpec,
    CheckpointSpec,
    EarlyStoppingSpec,
    CrossFitSpec,
    TeacherSpec,
    LatencySpec,
    EvaluationSpec,
    PathsSpec,
    PredictSpec,
    LimitsSpec,
    CalibrationSpec,
)

__all__ = [
    "SPECS",
    "CalibrationSpec",
    "CheckpointSpec",
    "CrossFitSpec",
    "DataSpec",
    "EarlyStoppingSpec",
    "EvaluationSpec",
    "HardwareSpec",
    "LatencySpec",
    "LimitsSpec",
    "PathsSpec",
    "PredictSpec",
    "Spec",
    "SplitSpec",
    "TeacherSpec",
    "declared",
    "group_defaults",
    "setting",
]
