"""The train stage: a config in, a recorded run out.

data -> split (+ leakage check) -> model -> scores -> thresholds on calibration data -> metrics per
split -> run directory + tracking run. Settings that need no data (hardware, model, thresholds,
callbacks, tracking) are built first, so a bad one fails before any data work.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from toxmod.config import check_values, group_option, instantiate_component, settings_from
from toxmod.data import SPLIT_NAMES, LabeledDataset, build_dataset
from toxmod.data.auxiliary import AuxiliaryTargets
from toxmod.data.datasets import scheme_from_config
from toxmod.data.text import normalize_text
from toxmod.distillation import check_distillation, teacher_targets
from toxmod.environment import environment
from toxmod.environment import tags as environment_tags
from toxmod.errors import ConfigError
from toxmod.evaluation import evaluate_predictions
from toxmod.evaluation.latency import measure_throughput
from toxmod.evaluation.metrics import calibration_change
from toxmod.evaluation.plots import write_run_plots
from toxmod.evaluation.sanity import chance_warnings
from toxmod.evaluation.scoring import score_split
from toxmod.evaluation.validation import validation_for
from toxmod.hardware import HardwareSettings, apply_threads, resolve_hardware
from toxmod.models import (
    CheckpointSettings,
    EarlyStoppingSettings,
    FitContext,
    Opening,
    Scorer,
    ValidationData,
)
from toxmod.models.calibrated import TemperatureScaled
from toxmod.paths import CONFIG_DIR, project_root, user_roots
from toxmod.progress import StageClock, console, warn
from toxmod.reports import headline_table, results_table, run_card
from toxmod.runs.budget import SMALL_CALIB_TAG
from toxmod.runs.gc import process_identity
from toxmod.runs.jobs import (
    FinishedJob,
    ResumePoint,
    check_resumable,
    job_key,
    resolve_resume,
    resumed_config,
)
from toxmod.runs.record import (
    EVALUATION_SPLIT,
    RunDir,
    finish_run_record,
    git_sha,
    holdout_eval_record,
    load_run_on_split,
    mark_finished,
    prefixed,
    record_failure,
    reopen,
    write_json,
    write_predictions,
    write_tracking,
)
from toxmod.runs.tracking import KIND_TAG, CurveRecorder, Tracker, flatten
from toxmod.splits import Split, build_manifest, prepare_split, write_split_folder
from toxmod.splits.checks import check_split, coarse_decisions
from toxmod.stages.corpora import TRAIN_SPLIT, outside_texts
from toxmod.stages.sweeps import Sweep


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: its metrics, tracking run id (None without tracking) and directory.

    ``skipped``: the job had already finished (``resume=auto``); these are its recorded numbers.
    """

    metrics: dict[str, float]
    run_id: str | None
    run_dir: Path
    skipped: bool = False


@dataclass(frozen=True)
class _Components:
    """Everything built and checked from config alone, before any data is read.

    ``context`` holds the fit settings; the stage adds the data (valid split, auxiliary targets),
    the tracker and the resume point once they exist.
    """

    hardware: HardwareSettings
    scorer: Scorer
    thresholder: Any  # TargetFPRThresholds | OptunaThresholds: fit(scheme, scores, targets) -> Thresholds
    context: FitContext
    fit_split: str
    fpr_targets: dict[str, float]  # each decision's FPR target (none without a budget: max_f1)


def train(
    cfg: DictConfig, run_dir: str | Path, overrides: Sequence[str] | None = None, sweep: Sweep | None = None
) -> TrainResult:
    """Run one experiment and record it. Raises ToxmodError on bad input.

    With ``resume=...`` the run continues in its original directory and tracking run, with its own
    config; ``overrides`` (the command line's) may change only what a later chunk may change.
    ``resume=auto`` returns a finished job's recorded result without computing anything. A job of a
    ``sweep`` is tagged ``sweep_id`` and nested under the sweep's MLflow parent run.
    """
    check_values(cfg, cfg, [])  # ranges and names (a sweep's jobs skip the entry point's check)
    tracker = instantiate_component(cfg.tracking, "tracking")
    plan = resolve_resume(str(cfg.resume), cfg, tracker.store()) if cfg.get("resume") else None
    if isinstance(plan, FinishedJob):
        return _finished_result(RunDir(plan.run_dir))
    if plan is not None:  # the run's own config, its tracking store included
        cfg = resumed_config(plan.run_dir, cfg, overrides)
        tracker = instantiate_component(cfg.tracking, "tracking")
    run = RunDir(plan.run_dir if plan else Path(run_dir))
    cfg = _with_trained_members(cfg, run)
    components = _build_components(cfg, run)
    np.random.seed(int(cfg.seed))

    clock = StageClock()
    with clock.stage("data"):
        dataset = build_dataset(cfg.data)
    with clock.stage("split"):
        split, leakage = prepare_split(cfg.split, dataset)
    targets = components.fpr_targets
    warnings = check_split(dataset, split, components.fit_split, targets)
    coarse = coarse_decisions(dataset, split, components.fit_split, targets)
    for warning in warnings:
        warn(warning)
    manifest = build_manifest(dataset, split)
    if plan is not None:
        check_resumable(plan.run_dir, manifest["split_sha256"])
        console.print(f"[bold]resuming[/] {plan.run_dir} from {plan.checkpoint.name}")
        reopen(run)
    run.path.mkdir(parents=True, exist_ok=True)
    write_split_folder(run.split, dataset, split)
    write_json(run.leakage, leakage)
    OmegaConf.save(cfg, run.config, resolve=True)
    env = environment(components.hardware.threads)
    write_json(run / RunDir.ENVIRONMENT, env)

    model_name = str(cfg.model.name)
    tags = {
        "split_sha256": manifest["split_sha256"],
        "data_sha256": dataset.sha256,
        "git_sha": git_sha(project_root()),
        "dataset": dataset.name,
        "model": model_name,
        "scheme": dataset.scheme.kind,
        "primary_label": dataset.scheme.primary_label,
        "split_source": split.source,
        "run_dir": str(run.path.resolve()),
        "job_key": job_key(cfg),
        KIND_TAG: "export" if str(cfg.get("task_name")) == "export" else "model",
        "hardware.threads": str(components.hardware.threads),
        "hardware.threads_from": components.hardware.threads_from,
        **environment_tags(env),
        **process_identity(),  # lets `python -m toxmod.runs gc` tell a dead run from a running one
        "allow_leakage": str(bool(cfg.split.get("allow_leakage", False))).lower(),
        "leakage_found": str(leakage["leaks"]).lower(),
        **({"warnings": " | ".join(warnings)[:5000]} if warnings else {}),
        **({SMALL_CALIB_TAG: "; ".join(f"{d}: {n}" for d, n in coarse.items())} if coarse else {}),
        **({"sweep_id": sweep.id} if sweep else {}),
        **{str(k): str(v) for k, v in (cfg.get("tags") or {}).items()},
    }
    run_name = cfg.get("run_name") or default_run_name(model_name, dataset.name, overrides)
    try:
        parent = None
        if sweep is not None and plan is None:  # the process that creates it owns it (for runs gc)
            parent = tracker.sweep_parent(sweep.id, sweep.folder, process_identity())
        resumed = plan.run_id if plan else None
        with tracker.run(run_name=run_name, tags=tags, resume_run_id=resumed, parent_run_id=parent):
            write_tracking(
                run, tracker.run_id, split_sha256=manifest["split_sha256"], job_key=tags["job_key"]
            )
            if plan is None:  # MLflow params are immutable; a resumed chunk records its config file
                tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
                tracker.log_params(
                    {f"hardware.resolved.{k}": v for k, v in components.hardware.as_dict().items()}
                )
            command = " ".join(["python -m toxmod.train", *(overrides or [])])
            metrics = _fit_and_evaluate(
                cfg, run, dataset, split, manifest, tracker, components, plan, clock, command
            )
    except BaseException as error:
        record_failure(run, error)
        raise
    mark_finished(run)
    if tracker.run_id:
        console.print(
            f"MLflow run {tracker.run_id} · re-evaluate: python -m toxmod.evaluate run={tracker.run_id}"
        )
    return TrainResult(metrics, tracker.run_id, run.path)


def _with_trained_members(cfg: DictConfig, run: RunDir) -> DictConfig:
    """``teacher.seeds``: train one run of ``teacher.member`` per seed, and one of each model config in
    ``teacher.also_train``, and add them to ``model.members`` (``resume=auto``: a member already
    trained with the same config is reused, not retrained)."""
    teacher = cfg.get("teacher") or {}
    seeds = list(teacher.get("seeds") or [])
    jobs = [(str(teacher.get("member")), int(seed)) for seed in seeds]
    jobs += [(str(name), int(cfg.seed)) for name in teacher.get("also_train") or []]
    if not jobs:
        return cfg
    if seeds and not teacher.get("member"):
        raise ConfigError("teacher.seeds is set but teacher.member is not (a model config, e.g. minilm)")
    if "members" not in cfg.model:
        raise ConfigError(
            f"teacher.seeds trains ensemble members; model={cfg.model.name} is not model=ensemble"
        )
    refs = [str(ref) for ref in cfg.model.members or []]
    for member, seed in jobs:
        member_cfg = cfg.copy()
        with open_dict(member_cfg):
            member_cfg.model = group_option(cfg, "train", "model", str(member))
            if member == teacher.get("member"):
                member_cfg.model.merge_with(teacher.get("model_overrides") or {})
            member_cfg.seed = int(seed)
            member_cfg.teacher = {"member": None, "seeds": [], "also_train": []}
            member_cfg.resume = "auto"
            member_cfg.run_name = f"{cfg.run_name or 'teacher'}-{member}-seed{seed}"
        console.print(f"[bold]teacher member[/] {member} seed {seed}")
        result = train(member_cfg, run.path / "members" / f"{member}-seed{seed}")
        refs.append(str(result.run_id or result.run_dir))
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.members = refs
    return cfg


# What a run name leaves out: the model and data are named already; where a run ran, is recorded,
# or continues from are not what it is.
_UNNAMED_CHOICES = ("model", "data", "resume", "run_name")
_UNNAMED_GROUPS = ("tracking", "paths", "hydra", "hardware", "callbacks", "tags", "latency")
_UNNAMED_KEYS = ("bootstrap", "plots", "log_pyfunc", "evaluate_splits", "optimized_metric")  # not the model


def default_run_name(model: str, dataset: str, overrides: Sequence[str] | None) -> str:
    """``tfidf_logreg-janitr-optuna-C=2-3fa1``: model, data, what the command changed, a unique suffix.

    Config group choices appear as the option (``threshold=optuna`` -> ``optuna``), other keys as
    their last part and value (``model.C=2`` -> ``C=2``); the suffix tells apart runs of one command.
    """
    parts = [model, dataset]
    for override in overrides or ():
        key, _, value = override.lstrip("+~").partition("=")
        if not value or key in (*_UNNAMED_CHOICES, *_UNNAMED_KEYS) or key.split(".", 1)[0] in _UNNAMED_GROUPS:
            continue
        is_group = "." not in key and (CONFIG_DIR / key).is_dir()  # threshold=optuna -> optuna
        parts.append(value if is_group else f"{key.rsplit('.', 1)[-1]}={value}")
    name = "-".join(parts)
    if len(name) > 80:
        name = name[:79] + "~"
    return f"{name}-{secrets.token_hex(2)}"


def _finished_result(run: RunDir) -> TrainResult:
    console.print(f"resume=auto: this job already finished in {run.path}; nothing to do")
    metrics = json.loads(run.metrics.read_text())
    return TrainResult(metrics, run.tracking_record().get("run_id"), run.path, skipped=True)


def _build_components(cfg: DictConfig, run: RunDir) -> _Components:
    """Hardware, model, thresholds, callbacks and fit settings, each checked against the label scheme."""
    hardware = resolve_hardware(cfg.hardware)
    apply_threads(hardware)
    with open_dict(cfg):  # what the model configs interpolate (n_jobs: ${hardware.threads}) is resolved
        cfg.hardware.threads = hardware.threads
    fit_split = str(cfg.threshold.get("fit_split", "calib"))
    if fit_split == EVALUATION_SPLIT:
        raise ConfigError(
            "threshold.fit_split=holdout: thresholds are chosen on calib/valid, never on the holdout"
        )
    scheme = scheme_from_config(cfg.data)
    thresholder = instantiate_component(cfg.threshold, "threshold")
    thresholder.check(scheme)
    if hasattr(thresholder, "storage") and not thresholder.storage:  # an Optuna study: in the run folder
        thresholder.storage = f"sqlite:///{(run.path / 'optuna.db').resolve()}"
    context = FitContext(
        hardware=hardware,
        validation_metrics=validation_for(thresholder, scheme),
        trainer=_plain(cfg.get("trainer")),
        checkpoint=settings_from(CheckpointSettings, _plain(cfg.get("checkpoint")), "checkpoint"),
        early_stopping=settings_from(
            EarlyStoppingSettings, _plain(cfg.get("early_stopping")), "early_stopping"
        ),
        checkpoint_dir=run.checkpoints,
        last_checkpoint=run.last_checkpoint,
        callbacks=[
            instantiate_component(node, f"callbacks.{name}")
            for name, node in (cfg.get("callbacks") or {}).items()
            if node is not None
        ],
    )
    scorer = instantiate_component(cfg.model, "model")
    scorer.check_settings(scheme, context)
    if _teacher_ref(cfg):
        check_distillation(cfg.distill, scorer)
    return _Components(hardware, scorer, thresholder, context, fit_split, _fpr_targets(thresholder, scheme))


def _teacher_ref(cfg: DictConfig) -> str | None:
    teacher = OmegaConf.select(cfg, "distill.teacher", default=None)
    return str(teacher) if teacher else None


def _calibrated(
    cfg: DictConfig, scorer: Scorer, valid: LabeledDataset, run: RunDir
) -> tuple[Scorer, dict[str, float]]:
    """``calibration=temperature``: the trained model with temperatures fitted on valid (by NLL),
    its valid ECE before/after, and the run's ``calibration.json``; otherwise the model as it is."""
    method = str(OmegaConf.select(cfg, "calibration.method", default="none"))
    if method == "none":
        return scorer, {}
    if not len(valid):
        raise ConfigError("calibration=temperature fits on valid, and valid is empty (use calibration=none)")
    scaled = TemperatureScaled.fit_on_valid(scorer, list(valid.texts), valid.targets)
    temperatures = scaled.temperatures
    calibrated = temperatures.apply(valid.scheme, scaled.valid_scores)
    ece = calibration_change(valid.scheme, scaled.valid_scores, calibrated, valid.targets)
    metrics = {f"valid/ece_{when}_calibration": value for when, value in ece.items()}
    metrics.update(
        {f"calibration/temperature/{n}": v for n, v in zip(temperatures.names, temperatures.values)}
    )
    write_json(run / RunDir.CALIBRATION, {**temperatures.to_json(), "valid_ece": ece})
    console.print(f"calibration=temperature: valid ECE {ece['before']:.4f} -> {ece['after']:.4f}")
    return scaled, metrics


def transfer_texts(cfg: DictConfig, dataset: LabeledDataset, split: Split) -> tuple[list[str], int]:
    """The unlabeled texts ``distill.transfer`` adds after the train split, and how many were removed
    for being valid/calib/holdout texts (train texts and repeats are dropped too)."""
    sources = [str(s) for s in (OmegaConf.select(cfg, "distill.transfer", default=None) or [TRAIN_SPLIT])]
    if sources[0] != TRAIN_SPLIT:
        raise ConfigError(
            f"distill.transfer={sources}: starts with {TRAIN_SPLIT} (the labelled rows); "
            f"add unlabeled texts after it, e.g. [{TRAIN_SPLIT}, ruddit]"
        )
    seen = set(split.part(dataset, TRAIN_SPLIT).normalized_texts)
    extra, removed = [], 0
    for source in sources[1:]:
        texts, record = outside_texts(source, cfg, "train", dataset, split, "distill.transfer")
        removed += record["removed"]
        for text in texts:
            key = normalize_text(text)
            if key not in seen:
                seen.add(key)
                extra.append(text)
    if extra or removed:
        console.print(
            f"distill.transfer: {len(extra)} unlabeled texts added; {removed} dropped for being in "
            "valid/calib/holdout"
        )
    return extra, removed


def _opening(cfg: DictConfig) -> Opening:
    """How this run opens the runs it builds on (members, teacher): this command's folders and data
    file, no server or key (an LLM run is not a member or teacher)."""
    data_file = (Path(str(cfg.data.path)),) if cfg.data.get("path") else ()
    return Opening(cache_dir=Path(str(cfg.paths.cache_dir)), roots=user_roots(cfg.paths), files=data_file)


def _plain(node: Any) -> dict[str, Any]:
    return dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}


def _fit_context(
    cfg: DictConfig,
    train_part: LabeledDataset,
    valid: LabeledDataset,
    tracker: Tracker,
    components: _Components,
    plan: ResumePoint | None,
) -> FitContext:
    """The checked fit settings plus the data, the tracker and the resume point."""
    return dataclasses.replace(
        components.context,
        validation=ValidationData(list(valid.texts), valid.targets) if len(valid) else None,
        resume_from=plan.checkpoint if plan else None,
        metrics_logger=CurveRecorder(tracker),
        auxiliary=_supported_auxiliary(cfg, train_part),
    )


def _supported_auxiliary(cfg: DictConfig, train_part: LabeledDataset) -> AuxiliaryTargets | None:
    """The train split's auxiliary targets with at least ``data.auxiliary.min_train_count`` positives."""
    if train_part.auxiliary is None:
        return None
    return train_part.auxiliary.supported(int(cfg.data.auxiliary.get("min_train_count") or 1))


def _fit_and_evaluate(
    cfg: DictConfig,
    run: RunDir,
    dataset: LabeledDataset,
    split: Split,
    manifest: dict[str, Any],
    tracker: Tracker,
    components: _Components,
    plan: ResumePoint | None,
    clock: StageClock,
    command: str,
) -> dict[str, float]:
    scheme = dataset.scheme
    parts = {name: split.part(dataset, name) for name in SPLIT_NAMES}
    scorer, fit_split = components.scorer, components.fit_split
    rows = len(parts["train"])
    console.print(scorer.fit_announcement(str(cfg.model.name), rows, dataset.name))
    context = _fit_context(cfg, parts["train"], parts["valid"], tracker, components, plan)
    member_refs = scorer.member_runs()
    if member_refs:  # an ensemble: its members are finished runs on this split
        downloads = Path(str(cfg.paths.downloads))
        members = [
            load_run_on_split(
                ref, tracker.store(), downloads, manifest["split_sha256"], "model.members", _opening(cfg)
            ).scorer
            for ref in member_refs
        ]
        scorer.attach_members(members)
        scorer.place_on(components.hardware)
    teacher_metrics: dict[str, float] = {}
    if _teacher_ref(cfg):
        extra_texts, removed = transfer_texts(cfg, dataset, split)
        teacher, cache = teacher_targets(
            cfg.distill,
            list(parts["train"].texts),
            manifest["split_sha256"],
            tracker.store(),
            Path(str(cfg.paths.cache_dir)),
            extra_texts,
            _opening(cfg),
        )
        context = dataclasses.replace(context, teacher=teacher)
        tracker.set_tags({"distill.teacher": _teacher_ref(cfg), "distill.cache_key": cache.key})
        teacher_metrics = {f"teacher/{name}": value for name, value in cache.info.items()}
        teacher_metrics["teacher/cache_built"] = float(cache.built)
        teacher_metrics["teacher/transfer_removed_evaluation_texts"] = float(removed)
    start = time.perf_counter()
    with clock.stage("fit"):
        scorer.fit(list(parts["train"].texts), parts["train"].targets, scheme, context)
    train_seconds = time.perf_counter() - start
    _record_monitor(context, scorer, tracker)
    scorer, calibration_metrics = _calibrated(cfg, scorer, parts["valid"], run)
    model_dir = scorer.save(run.model)
    tracker.set_tags({"model_kind": scorer.kind, **scorer.run_tags()})

    wanted = list(dict.fromkeys([fit_split, *cfg.evaluate_splits, EVALUATION_SPLIT]))
    scored, scoring_reports = {}, {}
    with clock.stage("score"):
        for name in wanted:
            scored[name] = score_split(scorer, parts[name])
            scoring_reports[name] = scorer.take_scoring_report()
    with clock.stage("thresholds"):
        thresholds = components.thresholder.fit(scheme, scored[fit_split].scores, scored[fit_split].targets)
    thresholds.save(run.thresholds)

    metrics = {
        "train_seconds": train_seconds,
        "train_rows": float(len(parts["train"])),
        "scoring_texts_per_second": scored[EVALUATION_SPLIT].texts_per_second,
        "model_size_bytes": float(scorer.size_bytes(model_dir)),
        **({"model_parameters": float(scorer.parameter_count)} if scorer.parameter_count else {}),
        **scorer.fit_report.metrics,
        **scoring_reports[EVALUATION_SPLIT],
        **teacher_metrics,
        **calibration_metrics,
        **thresholds.as_metrics(),
    }
    with clock.stage("evaluate"):
        for name in wanted:
            bootstrap = int(cfg.bootstrap) if name == EVALUATION_SPLIT else 0
            values = evaluate_predictions(
                scheme,
                scored[name].scores,
                scored[name].targets,
                thresholds.as_array(),
                bootstrap,
                int(cfg.seed),
            )
            metrics.update(prefixed(name, values))
    metrics["chance_warnings"] = float(_warn_if_chance(scheme, scored[EVALUATION_SPLIT], thresholds, tracker))
    if context.checkpoint.log_best:
        for folder, path in scorer.fit_report.artifacts.items():
            tracker.log_artifact(path, folder)
    holdout = parts[EVALUATION_SPLIT]
    metrics.update(_latency(cfg, scorer, list(holdout.texts)))
    write_predictions(
        run,
        EVALUATION_SPLIT,
        holdout.ids,
        holdout.targets,
        scored[EVALUATION_SPLIT].scores,
        scheme.output_names,
    )
    if cfg.get("plots", True):
        start = time.perf_counter()
        write_run_plots(
            run / RunDir.PLOTS,
            scheme,
            scored[EVALUATION_SPLIT].scores,
            scored[EVALUATION_SPLIT].targets,
            thresholds.as_array(),
            components.fpr_targets,
            _training_curves(context, scheme),
        )
        metrics["plots_seconds"] = time.perf_counter() - start
    metrics.update(clock.as_metrics())
    record = holdout_eval_record(
        manifest["split_sha256"], dataset.sha256, str(cfg.model.name), thresholds.as_dict(), metrics
    )
    finish_run_record(run, tracker, metrics, record, step=int(metrics.get("train/global_steps", 0)))
    tracker.describe(
        run_card(
            str(cfg.model.name),
            dataset.name,
            scheme,
            thresholds,
            components.fpr_targets,
            metrics,
            manifest["split_sha256"],
            command,
        )
    )
    if cfg.get("log_pyfunc", True) and tracker.enabled:
        from toxmod.stages.pyfunc_model import CODE_FILE, pip_requirements, signature_for  # mlflow.pyfunc

        model_uri = tracker.log_pyfunc_model(
            str(CODE_FILE),
            {"model": str(run.model), "thresholds": str(run.thresholds)},
            name=f"{cfg.model.name}-{dataset.name}",
            signature=signature_for(scheme),
            pip_requirements=pip_requirements(),
        )
        tracker.link_model_evidence(
            model_uri, dataset.name, str(dataset.path), manifest["split_sha256"], metrics
        )
    _print_results(dataset.name, scheme, metrics, thresholds.as_dict(), run.path, train_seconds)
    _print_chunk_end(cfg, metrics, run)
    return metrics


def _warn_if_chance(scheme: Any, scored: Any, thresholds: Any, tracker: Tracker) -> int:
    """Print (and tag) what says the model is no better than chance on the holdout; how many."""
    predictions = scheme.predict(scored.scores, thresholds.as_array())
    found = chance_warnings(scheme, scored.scores, scored.targets, predictions, EVALUATION_SPLIT)
    for line in found:
        warn(line)
    if found:
        tracker.set_tags({"chance_warnings": " | ".join(found)[:5000]})
    return len(found)


def _latency(cfg: DictConfig, scorer: Scorer, texts: list[str]) -> dict[str, float]:
    """Per-text latency at batch 1 (mean, p50, p95) and texts/s at batch 64 on the first holdout texts,
    through the scoring interface, so every run carries comparable serving numbers (``compare``,
    ``report``). A model may ask for fewer texts (``Scorer.latency_texts``: an LLM)."""
    settings = cfg.get("latency") or {}
    metrics: dict[str, float] = {}
    one, many = int(settings.get("batch1_texts", 0)), int(settings.get("batch64_texts", 0))
    if scorer.latency_texts is not None:
        one, many = min(one, scorer.latency_texts), min(many, scorer.latency_texts)
    if one and texts:
        result = measure_throughput(scorer, texts[:one], 1, repeats=1, warmup=1)
        metrics["latency/batch1_ms_per_text"] = 1000.0 / result.median_texts_per_second
        metrics["latency/batch1_ms_p50"] = result.median_batch_ms
        metrics["latency/batch1_ms_p95"] = result.p95_batch_ms
        metrics["latency/batch1_ms_mean"] = result.mean_batch_ms
    if many and texts:
        result = measure_throughput(scorer, texts[:many], 64, repeats=1, warmup=1)
        metrics["latency/batch64_texts_per_second"] = result.median_texts_per_second
    return metrics


def _fpr_targets(thresholder: Any, scheme: Any) -> dict[str, float]:
    """Each decision's FPR target; none for a threshold mode without a budget (``max_f1``)."""
    budget = thresholder.budget
    return {name: budget.target_for(name) for name in scheme.decision_names} if budget else {}


def _monitor(context: FitContext) -> str | None:
    """The metric that picks a trainer-driven model's kept checkpoint (None: no validation)."""
    if context.validation_metrics is None:
        return None
    return context.checkpoint.monitor or context.validation_metrics.default_monitor


def _training_curves(context: FitContext, scheme: Any) -> dict[str, list[tuple[int, float]]]:
    """The training loss and the checkpoint monitor per step, when the model logged them."""
    points = getattr(context.metrics_logger, "points", {})
    return {name: points[name] for name in ("train/loss", _monitor(context)) if name and points.get(name)}


def _record_monitor(context: FitContext, scorer: Scorer, tracker: Tracker) -> None:
    """A model that kept a checkpoint by a validation metric: the run records which (tag and param),
    and a monitor that never moved (the same value at every validation, so the first checkpoint was
    kept whatever came after) is a warning naming metrics that move."""
    monitor = _monitor(context)
    if monitor is None or "valid/best_monitored" not in scorer.fit_report.metrics:
        return
    tracker.set_tags({"checkpoint.monitor": monitor})
    tracker.log_params({"checkpoint.monitor_used": monitor})
    points = getattr(context.metrics_logger, "points", {})
    values = [value for _, value in points.get(monitor, [])]
    if len(values) >= 2 and max(values) - min(values) <= 1e-12:
        names = context.validation_metrics.names if context.validation_metrics else []
        moved = [n for n in names if n != monitor and len({v for _, v in points.get(n, [])}) > 1]
        better = "monitors that move: " + ", ".join(moved[:3]) if moved else "try valid/mean_roc_auc"
        warn(
            f"checkpoint monitor {monitor} was {values[0]:.4g} at all {len(values)} validations, so it "
            f"chose nothing (the first checkpoint was kept); {better} (checkpoint.monitor=...)"
        )
        tracker.set_tags({"checkpoint.monitor_degenerate": "true"})


def _print_chunk_end(cfg: DictConfig, metrics: dict[str, float], run: RunDir) -> None:
    """After a ``trainer.max_steps`` chunk that stopped short of the planned steps: how to go on."""
    steps, planned = metrics.get("train/global_steps"), metrics.get("train/planned_steps")
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=None)
    if steps is None or planned is None or not max_steps or int(max_steps) < 0:
        return
    if int(steps) == int(max_steps) < int(planned) and run.last_checkpoint.is_file():
        console.print(
            f"this chunk stopped at step {int(steps)} of {int(planned)} (trainer.max_steps); go on with: "
            f"python -m toxmod.train resume={run.path} trainer.max_steps=<more steps>",
            soft_wrap=True,  # one line: the command stays copyable
        )


def _print_results(
    name: str,
    scheme: Any,
    metrics: dict[str, float],
    thresholds: dict[str, float],
    run_dir: Path,
    seconds: float,
) -> None:
    console.print(results_table(f"{name} holdout", EVALUATION_SPLIT, scheme, metrics, thresholds))
    primary = scheme.primary_label
    names = [
        "macro_f1",
        "weighted_f1",
        scheme.headline_name,
        "mean_roc_auc",
        "ece",
        f"{primary}/recall",
        f"{primary}/fpr",
    ]
    console.print(headline_table(EVALUATION_SPLIT, metrics, names))
    console.print(f"train {seconds:.1f}s · run dir {run_dir}")
