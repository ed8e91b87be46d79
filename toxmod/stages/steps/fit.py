"""Step 5: fit the model on the train split with its context (valid data, tracker, resume point,
teacher), and record which validation metric picked a trainer-driven model's checkpoint."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from omegaconf import DictConfig

from toxmod.data import LabeledDataset
from toxmod.data.auxiliary import AuxiliaryTargets
from toxmod.models import FitContext, Scorer, ValidationData
from toxmod.models.base import TeacherTargets
from toxmod.progress import StageClock, console, warn
from toxmod.runs.jobs import ResumePoint
from toxmod.runs.tracking import CurveRecorder, Tracker
from toxmod.stages.steps.components import Components


@dataclass(frozen=True)
class FittedModel:
    """The trained model, the context it was fitted with, and the fit's wall time."""

    scorer: Scorer
    context: FitContext
    train_seconds: float


def fit_context(
    cfg: DictConfig,
    parts: dict[str, LabeledDataset],
    tracker: Tracker,
    components: Components,
    plan: ResumePoint | None,
    teacher: TeacherTargets | None,
) -> FitContext:
    """The checked fit settings plus the data, the tracker, the resume point and the teacher."""
    valid = parts["valid"]
    return dataclasses.replace(
        components.context,
        validation=ValidationData(list(valid.texts), valid.targets) if len(valid) else None,
        resume_from=plan.checkpoint if plan else None,
        metrics_logger=CurveRecorder(tracker),
        auxiliary=supported_auxiliary(cfg, parts["train"]),
        teacher=teacher,
    )


def supported_auxiliary(cfg: DictConfig, train_part: LabeledDataset) -> AuxiliaryTargets | None:
    """The train split's auxiliary targets with at least ``data.auxiliary.min_train_count`` positives."""
    if train_part.auxiliary is None:
        return None
    return train_part.auxiliary.supported(int(cfg.data.auxiliary.get("min_train_count") or 1))


def fit_model(
    cfg: DictConfig,
    scorer: Scorer,
    train_part: LabeledDataset,
    dataset_name: str,
    context: FitContext,
    clock: StageClock,
) -> FittedModel:
    """Announce, fit and time the model; ``scorer`` is fitted in place and returned in the result."""
    console.print(scorer.fit_announcement(str(cfg.model.name), len(train_part), dataset_name))
    start = time.perf_counter()
    with clock.stage("export" if str(cfg.get("task_name")) == "export" else "fit"):  # an export fits nothing
        scorer.fit(list(train_part.texts), train_part.targets, train_part.scheme, context)
    return FittedModel(scorer, context, time.perf_counter() - start)


def monitor(context: FitContext) -> str | None:
    """The metric that picks a trainer-driven model's kept checkpoint (None: no validation)."""
    if context.validation_metrics is None:
        return None
    return context.checkpoint.monitor or context.validation_metrics.default_monitor


def curve_points(context: FitContext) -> dict[str, list[tuple[int, float]]]:
    """Every curve the model logged during the fit, by metric name (empty: none logged)."""
    return dict(getattr(context.metrics_logger, "points", {}))


def training_curves(context: FitContext) -> dict[str, list[tuple[int, float]]]:
    """The training loss and the checkpoint monitor per step, when the model logged them."""
    points = curve_points(context)
    return {name: points[name] for name in ("train/loss", monitor(context)) if name and points.get(name)}


def record_monitor(fitted: FittedModel, tracker: Tracker) -> None:
    """A model that kept a checkpoint by a validation metric: the run records which (tag and param),
    and a monitor that never moved (the same value at every validation, so the first checkpoint was
    kept whatever came after) is a warning naming metrics that move."""
    context = fitted.context
    used = monitor(context)
    if used is None or "valid/best_monitored" not in fitted.scorer.fit_report.metrics:
        return
    tracker.set_tags({"checkpoint.monitor": used})
    tracker.log_params({"checkpoint.monitor_used": used})
    points = curve_points(context)
    values = [value for _, value in points.get(used, [])]
    if len(values) >= 2 and max(values) - min(values) <= 1e-12:
        names = context.validation_metrics.names if context.validation_metrics else []
        moved = [n for n in names if n != used and len({v for _, v in points.get(n, [])}) > 1]
        better = "monitors that move: " + ", ".join(moved[:3]) if moved else "try valid/mean_roc_auc"
        warn(
            f"checkpoint monitor {used} was {values[0]:.4g} at all {len(values)} validations, so it "
            f"chose nothing (the first checkpoint was kept); {better} (checkpoint.monitor=...)"
        )
        tracker.set_tags({"checkpoint.monitor_degenerate": "true"})
