"""Blocks of the train config that say how a run trains rather than what it is: checkpoints, early
stopping (neither is the job's: a resumed run may change them), cross-fitting and the teacher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toxmod.errors import ConfigError
from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class CheckpointSpec(Spec):
    """``checkpoint.*``: which validation metric picks the kept weights, and how often to save."""

    GROUP = "checkpoint"
    ROOT = "train"

    monitor: str | None = setting(job=False)  # None: the model's default (its primary operating point)
    mode: str = setting(job=False)
    every_n_steps: int | None = setting(low=1, job=False)  # also write the last checkpoint every N steps
    best_weights_only: bool = setting(job=False)
    log_best: bool = setting(job=False)  # the stage logs the best checkpoint to the tracker
    top_k: int = setting(low=1, job=False)  # the k best are kept; each besides the best is a model too
    keep_last: bool = setting(job=False)  # the last step's weights are a model too (when not the best)


@dataclass(frozen=True)
class EarlyStoppingSpec(Spec):
    """``early_stopping.*``: stop after ``patience`` validations without improvement of ``monitor``."""

    GROUP = "early_stopping"
    ROOT = "train"

    enabled: bool = setting(job=False)
    monitor: str | None = setting(job=False)  # None: the checkpoint monitor
    patience: int = setting(low=1, job=False)
    min_delta: float = setting(low=0.0, job=False)


@dataclass(frozen=True)
class LatencySpec(Spec):
    """``latency.*``: serving numbers of every run on its first holdout texts (0 = skip). What is timed
    after training does not change the job."""

    GROUP = "latency"
    ROOT = "train"

    batch1_texts: int = setting(low=0, job=False)  # -> latency/batch1_ms_per_text
    batch64_texts: int = setting(low=0, job=False)  # -> latency/batch64_texts_per_second


@dataclass(frozen=True)
class CrossFitSpec(Spec):
    """``crossfit.*``: ``folds`` K (0: off, else at least 2) and the seed of the fold assignment."""

    GROUP = "crossfit"
    ROOT = "train"

    folds: int = setting()
    seed: int = setting()

    def __post_init__(self) -> None:
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"crossfit.folds={self.folds}: expected 0 (off) or a number of folds >= 2")

    @property
    def enabled(self) -> bool:
        return self.folds >= 2


@dataclass(frozen=True)
class TeacherSpec(Spec):
    """``teacher.*``: the run a student distils from, or the members an ensemble trains first."""

    GROUP = "teacher"
    ROOT = "train"

    run: str | None = setting()  # a finished run (dir or MLflow id) a student distils from
    member: str | None = setting()  # a model config trained once per seed
    seeds: tuple[int, ...] | None = setting()
    member_choices: dict[str, str] | None = setting()  # the member model's own groups
    model_overrides: dict[str, Any] | None = setting()  # merged into each seed's model config
    also_train: tuple[str, ...] | None = setting()  # model configs trained once each
