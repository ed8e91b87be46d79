"""Step 1: everything built and checked from config alone, before any data is read, so a bad setting
fails before any data work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from toxmod.config import as_dict, hardware_of, instantiate_component, spec_of
from toxmod.data.datasets import scheme_of
from toxmod.data.schemes import LabelScheme
from toxmod.distillation import check_distillation
from toxmod.errors import ConfigError
from toxmod.evaluation.validation import validation_for
from toxmod.hardware import HardwareSettings, apply_threads
from toxmod.models import FitContext, Opening, Scorer
from toxmod.models.capabilities import BuiltFromRuns, OutOfFoldFromRuns, Student
from toxmod.paths import user_roots
from toxmod.runs.record import EVALUATION_SPLIT, RunDir
from toxmod.spec import (
    CalibrationSpec,
    CheckpointSpec,
    CrossFitSpec,
    DataSpec,
    EarlyStoppingSpec,
    PathsSpec,
    TeacherSpec,
)
from toxmod.stages.corpora import TRAIN_SPLIT, Corpus, corpus_of
from toxmod.thresholds import Thresholder


@dataclass(frozen=True)
class Components:
    """The run's parts built from config: ``context`` holds the fit settings (the fit step adds the
    data, the tracker and the resume point once they exist)."""

    hardware: HardwareSettings
    scorer: Scorer
    thresholder: Thresholder
    context: FitContext
    fit_split: str
    fpr_targets: dict[str, float]  # each decision's FPR target (none without a budget: max_f1)
    scheme: LabelScheme
    transfer: tuple[Corpus, ...] = ()  # ``distill.transfer`` beyond the train split, made concrete
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec.of)


def build_components(cfg: DictConfig, run: RunDir) -> Components:
    """Hardware, model, thresholds, callbacks and fit settings, each checked against the label scheme."""
    hardware = hardware_of(cfg.hardware)
    apply_threads(hardware)
    fit_split = str(cfg.threshold.fit_split)
    if fit_split == EVALUATION_SPLIT:
        raise ConfigError(
            "threshold.fit_split=holdout: thresholds are chosen on calib/valid, never on the holdout"
        )
    scheme = scheme_of(spec_of(DataSpec, cfg.data))
    thresholder: Thresholder = instantiate_component(cfg.threshold, "threshold")
    thresholder.check(scheme)
    if hasattr(thresholder, "storage") and not thresholder.storage:  # an Optuna study: in the run folder
        thresholder.storage = f"sqlite:///{(run.path / 'optuna.db').resolve()}"
    context = FitContext(
        hardware=hardware,
        validation_metrics=validation_for(thresholder, scheme),
        trainer=as_dict(cfg.get("trainer")),
        checkpoint=spec_of(CheckpointSpec, cfg.get("checkpoint")),
        early_stopping=spec_of(EarlyStoppingSpec, cfg.get("early_stopping")),
        checkpoint_dir=run.checkpoints,
        last_checkpoint=run.last_checkpoint,
        callbacks=[
            instantiate_component(node, f"callbacks.{name}")
            for name, node in (cfg.get("callbacks") or {}).items()
            if node is not None
        ],
    )
    scorer: Scorer = instantiate_component(cfg.model, "model")
    scorer.check_settings(scheme, context)
    check_teacher(cfg, scorer)
    check_crossfit(crossfit_settings(cfg), teacher_settings(cfg), scorer)
    targets = fpr_targets(thresholder, scheme)
    transfer = transfer_corpora(cfg) if teacher_ref(cfg) else ()
    calibration = spec_of(CalibrationSpec, cfg.get("calibration"))
    return Components(
        hardware, scorer, thresholder, context, fit_split, targets, scheme, transfer, calibration
    )


def transfer_corpora(cfg: DictConfig) -> tuple[Corpus, ...]:
    """``distill.transfer`` after the train split: each data config composed and each file checked
    now, before any data is read."""
    sources = [str(s) for s in (cfg.distill.get("transfer") or [TRAIN_SPLIT])]
    if sources[0] != TRAIN_SPLIT:
        raise ConfigError(
            f"distill.transfer={sources}: starts with {TRAIN_SPLIT} (the labelled rows); "
            f"add unlabeled texts after it, e.g. [{TRAIN_SPLIT}, ruddit]"
        )
    return tuple(corpus_of(source, cfg, "train", "distill.transfer") for source in sources[1:])


def check_teacher(cfg: DictConfig, scorer: Scorer) -> None:
    """``teacher.run`` and ``distill`` come together: the run to learn from, and how."""
    ref, method = teacher_ref(cfg), str(cfg.distill.method)
    if ref and method == "none":
        raise ConfigError(f"teacher.run={ref} needs distill=kd or distill=kd_hidden (how to learn from it)")
    if not ref and method != "none":
        raise ConfigError(
            f"distill={method} needs teacher.run=<run dir | MLflow run id> (what to learn from)"
        )
    if ref:
        check_distillation(cfg.distill, scorer)


def fpr_targets(thresholder: Thresholder, scheme: LabelScheme) -> dict[str, float]:
    """Each decision's FPR target; none for a threshold mode without a budget (``max_f1``)."""
    budget = thresholder.budget
    return {name: budget.target_for(name) for name in scheme.decision_names} if budget else {}


def crossfit_settings(cfg: DictConfig) -> CrossFitSpec:
    return spec_of(CrossFitSpec, cfg.get("crossfit"))


def teacher_settings(cfg: DictConfig) -> TeacherSpec:
    return spec_of(TeacherSpec, cfg.get("teacher"))


def check_crossfit(crossfit: CrossFitSpec, teacher: TeacherSpec, scorer: Scorer) -> None:
    """Refuse ``crossfit.folds`` where copies cannot be fitted, before any data is read."""
    if not crossfit.enabled:
        return
    if isinstance(scorer, Student) and teacher.run:
        raise ConfigError(
            "crossfit.folds with teacher.run: a student's teacher outputs cover its train rows, not a "
            "fold's; cross-fit the teacher (or its members) instead"
        )
    if isinstance(scorer, BuiltFromRuns) and not isinstance(scorer, OutOfFoldFromRuns):
        raise ConfigError(
            f"crossfit.folds: a {scorer.kind} model is built from another run and cannot be refitted"
        )


def teacher_ref(cfg: DictConfig) -> str | None:
    """The run a student distils from (``teacher.run``), None without distillation."""
    return teacher_settings(cfg).run or None


def run_opening(cfg: DictConfig) -> Opening:
    """How this run opens the runs it builds on (members, teacher): this command's folders and data
    file, no server or key (an LLM run is not a member or teacher)."""
    data_file = (Path(str(cfg.data.path)),) if cfg.data.get("path") else ()
    return Opening(
        cache_dir=spec_of(PathsSpec, cfg.paths).cache_dir, roots=user_roots(cfg.paths), files=data_file
    )
