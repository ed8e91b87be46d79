"""The train stage: a config in, a recorded run out, as a sequence of named steps (``stages/steps``).

components -> members -> data -> teacher -> fit -> calibrate -> score + thresholds -> evaluate ->
record. What needs no data is built first, so a bad setting fails before any data work.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from toxmod.config import as_dict, check_values, instantiate_component
from toxmod.progress import StageClock, console, styled
from toxmod.runs.claim import TOKEN_TAG, check_resume_target, claimed
from toxmod.runs.gc import process_identity
from toxmod.runs.jobs import FinishedJob, ResumePoint, check_resumable, resolve_resume, resumed_config
from toxmod.runs.record import EVALUATION_SPLIT, RunDir, mark_finished, record_failure, reopen, write_tracking
from toxmod.runs.tracking import Tracker, check_user_tags, flatten
from toxmod.stages.steps.calibrate import calibrate
from toxmod.stages.steps.checkpoints import save_checkpoints
from toxmod.stages.steps.components import Components, build_components
from toxmod.stages.steps.crossfit import cross_fit_run
from toxmod.stages.steps.data import PreparedData, default_run_name, prepare_data, run_tags, write_inputs
from toxmod.stages.steps.evaluate import evaluate_run, holdout_breakdown
from toxmod.stages.steps.fit import fit_context, fit_model, record_monitor
from toxmod.stages.steps.members import with_trained_members
from toxmod.stages.steps.record import record_run
from toxmod.stages.steps.score import reported_splits, score_and_threshold
from toxmod.stages.steps.teacher import attach_members, teacher_outputs
from toxmod.stages.sweeps import Sweep

__all__ = ["TrainResult", "default_run_name", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: its metrics, tracking run id (None without tracking) and directory.

    ``skipped``: the job had already finished (``resume=auto``); these are its recorded numbers.
    """

    metrics: dict[str, float]
    run_id: str | None
    run_dir: Path
    skipped: bool = False
    primary_decision: str = ""  # the thresholded decision of the primary label (what select ranks on)


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: Sequence[str] | None = None,
    sweep: Sweep | None = None,
    stage_tags: dict[str, str] | None = None,
    callbacks: Sequence[object] = (),
) -> TrainResult:
    """Run one experiment and record it. Raises ToxmodError on bad input.

    With ``resume=...`` the run continues in its original directory and tracking run, with its own
    config; ``overrides`` (the command line's) may change only what a later chunk may change.
    ``resume=auto`` returns a finished job's recorded result without computing anything. A job of a
    ``sweep`` is tagged ``sweep_id`` and nested under the sweep's MLflow parent run. ``stage_tags``:
    tags of the stage that calls (an export's source), which a config's ``tags`` may not set;
    ``callbacks``: extra Lightning callbacks of the caller (a search trial's pruning).
    """
    check_values(cfg, cfg, [])  # ranges and names (a sweep's jobs skip the entry point's check)
    tracker = instantiate_component(cfg.tracking, "tracking")
    try:
        plan = resolve_resume(str(cfg.resume), as_dict(cfg), tracker.store()) if cfg.resume else None
    except BaseException:
        _drop_unused_folder(Path(run_dir), None)
        raise
    if plan is not None:
        _drop_unused_folder(Path(run_dir), Path(plan.run_dir))
    if isinstance(plan, FinishedJob):
        return _finished_result(RunDir(plan.run_dir))
    if plan is not None:  # the run's own config, its tracking store included
        cfg = OmegaConf.create(resumed_config(plan.run_dir, as_dict(cfg), overrides))
        tracker = instantiate_component(cfg.tracking, "tracking")
    check_user_tags(cfg.tags)
    run = RunDir(plan.run_dir if plan else Path(run_dir))
    if plan is not None:  # before anything is written: the tracking run must be this folder's
        check_resume_target(run, plan.run_id, tracker.store())
    with claimed(run, resuming=plan is not None) as token:  # gc leaves it alone while this runs
        return _claimed(cfg, run, token, tracker, plan, overrides, sweep, stage_tags, callbacks)


def _drop_unused_folder(folder: Path, used: Path | None) -> None:
    """A resume works in its run's own folder (``used``; None: it was refused): the folder Hydra made
    for this command (holding only its ``.hydra``) is removed, so no empty run folder is left behind."""
    if not folder.is_dir() or (used is not None and folder.resolve() == used.resolve()):
        return
    if all(entry.name == ".hydra" for entry in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)


def _claimed(
    cfg: DictConfig,
    run: RunDir,
    token: str,
    tracker: Tracker,
    plan: ResumePoint | None,
    overrides: Sequence[str] | None,
    sweep: Sweep | None,
    stage_tags: dict[str, str] | None,
    callbacks: Sequence[object] = (),
) -> TrainResult:
    """The run in its claimed folder: members, components, data, then the steps under tracking."""
    cfg = with_trained_members(cfg, run, train)
    components = build_components(cfg, run)
    if callbacks:
        context = dataclasses.replace(
            components.context, callbacks=[*components.context.callbacks, *callbacks]
        )
        components = dataclasses.replace(components, context=context)
    np.random.seed(int(cfg.seed))
    clock = StageClock()
    prepared = prepare_data(cfg, components, clock)
    if plan is not None:
        check_resumable(plan.run_dir, prepared.split_sha256)
        console.print(styled("resuming", f" {plan.run_dir} from {plan.checkpoint.name}"))
        reopen(run)
    env = write_inputs(run, cfg, prepared, components.hardware.threads)
    own = {**(stage_tags or {}), TOKEN_TAG: token}
    tags = run_tags(cfg, run, prepared, components, env, sweep.id if sweep else None, own)
    run_name = cfg.run_name or default_run_name(str(cfg.model.name), prepared.dataset.name, overrides)
    try:
        parent = None
        if sweep is not None and plan is None:  # the process that creates it owns it (for runs gc)
            parent = tracker.sweep_parent(sweep.id, sweep.folder, process_identity())
        resumed = plan.run_id if plan else None
        with tracker.run(run_name=run_name, tags=tags, resume_run_id=resumed, parent_run_id=parent):
            write_tracking(
                run,
                tracker.run_id,
                split_sha256=prepared.split_sha256,
                job_key=tags["job_key"],
                primary_decision=components.scheme.primary_decision,
            )
            if plan is None:  # MLflow params are immutable; a resumed chunk records its config file
                tracker.log_params(flatten(as_dict(cfg)))
                tracker.log_params(
                    {f"hardware.resolved.{k}": v for k, v in components.hardware.as_dict().items()}
                )
            command = " ".join(["python -m toxmod.train", *(overrides or [])])
            metrics = _run_steps(cfg, run, prepared, tracker, components, plan, clock, command)
    except BaseException as error:
        record_failure(run, error)
        raise
    mark_finished(run)
    if tracker.run_id:
        console.print(
            f"MLflow run {tracker.run_id} · re-evaluate: python -m toxmod.evaluate run={tracker.run_id}"
        )
    return TrainResult(metrics, tracker.run_id, run.path, primary_decision=components.scheme.primary_decision)


def _run_steps(
    cfg: DictConfig,
    run: RunDir,
    prepared: PreparedData,
    tracker: Tracker,
    components: Components,
    plan: ResumePoint | None,
    clock: StageClock,
    command: str,
) -> dict[str, float]:
    """The steps that need the tracking run: teacher, fit, calibrate, score, evaluate, record."""
    parts = prepared.parts()
    members_out_of_fold = attach_members(cfg, components.scorer, tracker, prepared, components.hardware)
    teacher, teacher_metrics = teacher_outputs(cfg, prepared, tracker, components.transfer)
    context = fit_context(cfg, parts, tracker, components, plan, teacher)
    fitted = fit_model(cfg, components.scorer, parts["train"], prepared.dataset.name, context, clock)
    record_monitor(fitted, tracker)
    scorer, calibration_metrics = calibrate(components.calibration, fitted.scorer, parts["valid"], run)
    fitted = dataclasses.replace(fitted, scorer=scorer)
    scorer.save(run.model)
    tracker.set_tags({"model_kind": scorer.kind, **scorer.run_tags()})
    crossfit_metrics = cross_fit_run(
        cfg, run, parts["train"], scorer, fitted.context, components, members_out_of_fold, clock
    )
    splits = reported_splits(cfg, components.fit_split)
    scored = score_and_threshold(
        splits, scorer, parts, components.thresholder, components.fit_split, run, clock
    )
    save_checkpoints(cfg, run, fitted, prepared, components, tracker, clock)
    holdout_texts = list(parts[EVALUATION_SPLIT].texts)
    extra = {**teacher_metrics, **calibration_metrics, **crossfit_metrics}
    metrics = evaluate_run(
        cfg, run, fitted, scored, holdout_texts, len(parts["train"]), components, tracker, clock, extra
    )
    metrics.update(holdout_breakdown(cfg, run, parts[EVALUATION_SPLIT], scored, components))
    record_run(cfg, run, prepared, fitted, scored, components, tracker, metrics, command)
    return metrics


def _finished_result(run: RunDir) -> TrainResult:
    console.print(f"resume=auto: this job already finished in {run.path}; nothing to do")
    metrics = json.loads(run.metrics.read_text())
    record = run.tracking_record()
    return TrainResult(
        metrics,
        record.get("run_id"),
        run.path,
        skipped=True,
        primary_decision=str(record.get("primary_decision", "")),
    )
