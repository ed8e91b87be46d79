"""Step 9: the run's record -- holdout predictions, best checkpoint, metrics, ``holdout_eval.json``,
the run card, the MLflow pyfunc model (``log_pyfunc``), and what the console shows at the end."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from toxmod.data.schemes import LabelScheme
from toxmod.progress import console
from toxmod.runs.record import (
    EVALUATION_SPLIT,
    RunDir,
    finish_run_record,
    holdout_eval_record,
    write_predictions,
)
from toxmod.runs.tracking import Tracker
from toxmod.stages.steps.components import Components
from toxmod.stages.steps.data import PreparedData
from toxmod.stages.steps.fit import FittedModel
from toxmod.stages.steps.score import ScoredRun
from toxmod.tables import headline_table, results_table, run_card


def record_run(
    cfg: DictConfig,
    run: RunDir,
    prepared: PreparedData,
    fitted: FittedModel,
    scored: ScoredRun,
    components: Components,
    tracker: Tracker,
    metrics: dict[str, float],
    command: str,
) -> None:
    """Write and log everything a finished run is opened with, then print the results."""
    dataset, scheme, thresholds = prepared.dataset, prepared.dataset.scheme, scored.thresholds
    model_name = str(cfg.model.name)
    if fitted.context.checkpoint.log_best:
        for folder, path in fitted.scorer.fit_report.artifacts.items():
            tracker.log_artifact(path, folder)
    holdout = prepared.split.part(dataset, EVALUATION_SPLIT)
    write_predictions(
        run, EVALUATION_SPLIT, holdout.ids, holdout.targets, scored.holdout.scores, scheme.output_names
    )
    record = holdout_eval_record(
        prepared.split_sha256, dataset.sha256, model_name, thresholds.as_dict(), metrics
    )
    finish_run_record(run, tracker, metrics, record, step=int(metrics.get("train/global_steps", 0)))
    card = run_card(
        model_name,
        dataset.name,
        scheme,
        thresholds,
        components.fpr_targets,
        metrics,
        prepared.split_sha256,
        command,
    )
    tracker.describe(card)
    if cfg.log_pyfunc and tracker.enabled:
        from toxmod.stages.pyfunc_model import CODE_FILE, pip_requirements, signature_for  # mlflow.pyfunc

        model_uri = tracker.log_pyfunc_model(
            str(CODE_FILE),
            {"model": str(run.model), "thresholds": str(run.thresholds)},
            name=f"{model_name}-{dataset.name}",
            signature=signature_for(scheme),
            pip_requirements=pip_requirements(),
        )
        if model_uri is not None:  # MLflow tracking
            tracker.link_model_evidence(
                model_uri, dataset.name, str(dataset.path), prepared.split_sha256, metrics
            )
    print_results(dataset.name, scheme, metrics, thresholds.as_dict(), run.path, fitted.train_seconds)
    print_chunk_end(cfg, metrics, run)


def print_chunk_end(cfg: DictConfig, metrics: dict[str, float], run: RunDir) -> None:
    """After a ``trainer.max_steps`` chunk that stopped short of the planned steps: how to go on."""
    steps, planned = metrics.get("train/global_steps"), metrics.get("train/planned_steps")
    max_steps = cfg.trainer.get("max_steps") if "trainer" in cfg else None
    if steps is None or planned is None or not max_steps or int(max_steps) < 0:
        return
    if int(steps) == int(max_steps) < int(planned) and run.last_checkpoint.is_file():
        console.print(
            f"this chunk stopped at step {int(steps)} of {int(planned)} (trainer.max_steps); go on with: "
            f"python -m toxmod.train resume={run.path} trainer.max_steps=<more steps>",
            soft_wrap=True,  # one line: the command stays copyable
        )


def print_results(
    name: str,
    scheme: LabelScheme,
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
