"""``python -m toxmod.train``: compose a run from config, train, choose thresholds, evaluate, record.

The entry point only wires modules together: data -> split (+ leakage check) -> model -> scores ->
thresholds on calibration data -> metrics per split -> run directory + MLflow run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from toxmod.config import instantiate_component, run_entry_point
from toxmod.data import SPLIT_NAMES, LabeledDataset, LabelScheme, build_dataset
from toxmod.data.auxiliary import AuxiliaryTargets
from toxmod.errors import ConfigError, exit_on_user_error
from toxmod.evaluation import evaluate_predictions
from toxmod.hardware import HardwareSettings, apply_threads, resolve_hardware
from toxmod.models import FitContext
from toxmod.paths import project_root
from toxmod.reports import console, headline_table, results_table
from toxmod.resume import ResumePoint, reopen_resumed_run, resolve_resume, resumed_config
from toxmod.runs import (
    CONFIG_FILE,
    EVALUATION_SPLIT,
    HOLDOUT_EVAL_FILE,
    LEAKAGE_FILE,
    MODEL_DIR,
    SPLIT_DIR,
    THRESHOLDS_FILE,
    TRACKING_FILE,
    finish_run_record,
    git_sha,
    holdout_eval_record,
    model_size_metrics,
    prefixed,
    record_failure,
    score_split,
    write_json,
)
from toxmod.splits import Split, build_manifest, prepare_split, write_split_folder
from toxmod.tracking import Tracker, flatten


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced: its metrics, MLflow run id (None without tracking) and directory."""

    metrics: dict[str, float]
    run_id: str | None
    run_dir: Path


def train(cfg: DictConfig, run_dir: str | Path, overrides: Sequence[str] | None = None) -> TrainResult:
    """Run one experiment and record it. Raises ToxmodError on bad input (the MLflow run is FAILED).

    With ``resume=...`` the run continues in its original directory and MLflow run, with its own
    config; ``overrides`` (the command line's) may change only what a later chunk may change.
    """
    resume = resolve_resume(str(cfg.resume), cfg) if cfg.get("resume") else None
    if resume:
        cfg = resumed_config(resume.run_dir, cfg, overrides)
    run_dir = resume.run_dir if resume else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    hardware = resolve_hardware(cfg.hardware)
    apply_threads(hardware)
    np.random.seed(int(cfg.seed))

    dataset = build_dataset(cfg.data)
    split, leakage = prepare_split(cfg.split, dataset)
    fit_split = str(cfg.threshold.get("fit_split", "calib"))
    if fit_split == EVALUATION_SPLIT:
        raise ConfigError(
            "threshold.fit_split=holdout: thresholds are chosen on calib/valid, never on the holdout"
        )
    if resume:
        reopen_resumed_run(resume, build_manifest(dataset, split)["split_sha256"], HOLDOUT_EVAL_FILE)
    manifest = write_split_folder(run_dir / SPLIT_DIR, dataset, split)
    write_json(run_dir / LEAKAGE_FILE, leakage)
    OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)

    tracker = instantiate_component(cfg.tracking, "tracking")
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
        "run_dir": str(run_dir.resolve()),
        "allow_leakage": str(bool(cfg.split.get("allow_leakage", False))).lower(),
        "leakage_found": str(leakage["leaks"]).lower(),
        **{str(k): str(v) for k, v in (cfg.get("tags") or {}).items()},
    }
    run_name = cfg.get("run_name") or f"{model_name}-{dataset.name}"
    try:
        with tracker.run(run_name=run_name, tags=tags, resume_run_id=resume.run_id if resume else None):
            write_json(
                run_dir / TRACKING_FILE,
                {"run_id": tracker.run_id, "split_sha256": manifest["split_sha256"]},
            )
            if resume is None:  # MLflow params are immutable; a resumed chunk records its config file
                tracker.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
                tracker.log_params({f"hardware.resolved.{k}": v for k, v in hardware.as_dict().items()})
            metrics = _fit_and_evaluate(
                cfg, run_dir, dataset, split, manifest, tracker, fit_split, hardware, resume
            )
    except BaseException as error:
        record_failure(run_dir, error)
        raise
    if tracker.run_id:
        console.print(
            f"MLflow run {tracker.run_id} · re-evaluate: python -m toxmod.evaluate run={tracker.run_id}"
        )
    return TrainResult(metrics, tracker.run_id, run_dir)


def _fit_context(
    cfg: DictConfig,
    run_dir: Path,
    train_part: LabeledDataset,
    valid: LabeledDataset,
    tracker: Tracker,
    hardware: HardwareSettings,
    resume: ResumePoint | None,
) -> FitContext:
    """Validation data, trainer settings and resume point for trainer-driven models."""
    return FitContext(
        run_dir=run_dir,
        tracker=tracker,
        hardware=hardware,
        valid_texts=list(valid.texts),
        valid_targets=valid.targets,
        target_fpr=float(cfg.threshold.get("target_fpr", 0.02)),
        trainer=_plain(cfg.get("trainer")),
        checkpoint=_plain(cfg.get("checkpoint")),
        early_stopping=_plain(cfg.get("early_stopping")),
        resume_from=resume.checkpoint if resume else None,
        callbacks=[
            instantiate_component(node, f"callbacks.{name}")
            for name, node in (cfg.get("callbacks") or {}).items()
            if node is not None
        ],
        auxiliary=_supported_auxiliary(cfg, train_part),
    )


def _supported_auxiliary(cfg: DictConfig, train_part: LabeledDataset) -> AuxiliaryTargets | None:
    """The train split's auxiliary targets with at least ``data.auxiliary.min_train_count`` positives."""
    if train_part.auxiliary is None:
        return None
    min_count = int(cfg.data.auxiliary.get("min_train_count") or 1)
    auxiliary = train_part.auxiliary.supported(min_count)
    console.print(
        f"auxiliary targets (>= {min_count} train positives, neural models only): "
        f"{len(auxiliary.names)} tags {auxiliary.names}"
    )
    return auxiliary


def _plain(node: Any) -> dict[str, Any]:
    return dict(OmegaConf.to_container(node, resolve=True)) if node is not None else {}


def _fit_and_evaluate(
    cfg: DictConfig,
    run_dir: Path,
    dataset: LabeledDataset,
    split: Split,
    manifest: dict[str, Any],
    tracker: Tracker,
    fit_split: str,
    hardware: HardwareSettings,
    resume: ResumePoint | None,
) -> dict[str, float]:
    scheme = dataset.scheme
    parts = {name: split.part(dataset, name) for name in SPLIT_NAMES}
    scorer = instantiate_component(cfg.model, "model")
    thresholder = instantiate_component(cfg.threshold, "threshold")  # bad settings fail before training
    console.print(f"[bold]training[/] {cfg.model.name} on {len(parts['train'])} {dataset.name} rows ...")
    start = time.perf_counter()
    context = _fit_context(cfg, run_dir, parts["train"], parts["valid"], tracker, hardware, resume)
    scorer.fit(list(parts["train"].texts), parts["train"].targets, scheme, context)
    train_seconds = time.perf_counter() - start
    model_dir = scorer.save(run_dir / MODEL_DIR)

    wanted = list(dict.fromkeys([fit_split, *cfg.evaluate_splits, EVALUATION_SPLIT]))
    scored = {name: score_split(scorer, parts[name]) for name in wanted}
    thresholds = thresholder.fit(scheme, scored[fit_split].scores, scored[fit_split].targets)
    thresholds.save(run_dir / THRESHOLDS_FILE)

    metrics = {
        "train_seconds": train_seconds,
        "train_rows": float(len(parts["train"])),
        "scoring_texts_per_second": scored[EVALUATION_SPLIT].texts_per_second,
        **model_size_metrics(scorer, model_dir),
        **getattr(scorer, "training_summary", {}),
        **thresholds.as_metrics(),
    }
    for name in wanted:
        bootstrap = int(cfg.bootstrap) if name == EVALUATION_SPLIT else 0
        values = evaluate_predictions(
            scheme, scored[name].scores, scored[name].targets, thresholds.as_array(), bootstrap, int(cfg.seed)
        )
        metrics.update(prefixed(name, values))
    best_checkpoint = getattr(scorer, "best_checkpoint", None)
    if best_checkpoint and (cfg.get("checkpoint") or {}).get("log_best", True):
        tracker.log_artifact(best_checkpoint, "checkpoints")
    record = holdout_eval_record(
        manifest["split_sha256"], dataset.sha256, str(cfg.model.name), thresholds.as_dict(), metrics
    )
    finish_run_record(run_dir, tracker, metrics, record)
    _print_results(dataset.name, scheme, metrics, thresholds.as_dict(), run_dir, train_seconds)
    return metrics


def _print_results(
    name: str,
    scheme: LabelScheme,
    metrics: dict[str, float],
    thresholds: dict[str, float],
    run_dir: Path,
    train_seconds: float,
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
    console.print(f"train {train_seconds:.1f}s · run dir {run_dir}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> float | None:
    hydra_config = HydraConfig.get()
    result = train(cfg, hydra_config.runtime.output_dir, list(hydra_config.overrides.task))
    optimized = cfg.get("optimized_metric")
    return float(result.metrics[optimized]) if optimized else None


def main() -> Any:
    """Console entry point (``toxmod-train`` / ``python -m toxmod.train``)."""
    return run_entry_point("train", _hydra_main)


if __name__ == "__main__":
    main()
