"""Step 8b: every checkpoint a neural run kept besides the best (``checkpoint.top_k``, the last step) as a
model of its own: saved under ``checkpoint_models/step-<n>/`` with thresholds fitted on the fit split for
*its* scores and its valid metrics at them, so ``checkpoint=<step>|last`` opens it like the run's own
model and the MLflow Models view lists a run's checkpoints side by side."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from toxmod.evaluation.scoring import score_split
from toxmod.models.base import CheckpointVariant
from toxmod.progress import StageClock, console
from toxmod.runs.record import RunDir, prefixed, write_json
from toxmod.runs.tracking import Tracker
from toxmod.stages.steps.components import Components
from toxmod.stages.steps.data import PreparedData
from toxmod.stages.steps.evaluate import split_metrics
from toxmod.stages.steps.fit import FittedModel

INDEX = "index.json"


@dataclass(frozen=True)
class KeptCheckpoint:
    """A saved checkpoint model: its name, step and valid metrics at its own thresholds."""

    variant: CheckpointVariant
    metrics: dict[str, float]


def save_checkpoints(
    cfg: DictConfig,
    run: RunDir,
    fitted: FittedModel,
    prepared: PreparedData,
    components: Components,
    tracker: Tracker,
    clock: StageClock,
) -> list[KeptCheckpoint]:
    """Save, threshold and measure each kept checkpoint; log its numbers as ``checkpoint/<name>/...``
    at its step and (``log_pyfunc``) log it as a LoggedModel -- before the run's final numbers exist,
    since MLflow links a logged model to the run's metrics at the model's step."""
    parts = prepared.parts()
    variants = fitted.scorer.fit_report.variants
    best_step = _best_step(fitted)
    if not variants or best_step is None:
        return []
    kept: list[KeptCheckpoint] = []
    fit_split, scheme = components.fit_split, components.scheme
    with clock.stage("checkpoints"):
        for variant in variants:
            folder = run.checkpoint_folder(variant.name)
            variant.scorer.save(folder / RunDir.MODEL)
            fit_scored = score_split(variant.scorer, parts[fit_split])
            valid_scored = fit_scored if fit_split == "valid" else score_split(variant.scorer, parts["valid"])
            thresholds = components.thresholder.fit(scheme, fit_scored.scores, fit_scored.targets)
            thresholds.save(folder / RunDir.THRESHOLDS)
            metrics = prefixed("valid", split_metrics(scheme, valid_scored, thresholds, 0, int(cfg.seed)))
            write_json(
                folder / "checkpoint.json",
                {
                    "step": variant.step,
                    "monitored": variant.monitored,
                    "last": variant.last,
                    "metrics": metrics,
                },
            )
            tracker.log_metrics(
                {f"checkpoint/{variant.name}/{k}": v for k, v in metrics.items()}, variant.step
            )
            kept.append(KeptCheckpoint(variant, metrics))
    last = next((k.variant.step for k in kept if k.variant.last), best_step)
    index = {"best_step": best_step, "last_step": last, "steps": [k.variant.step for k in kept]}
    write_json(run / RunDir.CHECKPOINT_MODELS / INDEX, index)
    last_name = next((k.variant.name for k in kept if k.variant.last), None)
    tracker.set_tags(
        {"checkpoint.best_step": str(best_step), **({"checkpoint.last": last_name} if last_name else {})}
    )
    tracker.log_artifacts(run / RunDir.CHECKPOINT_MODELS, RunDir.CHECKPOINT_MODELS)
    primary = f"valid/{scheme.primary_decision}/recall"
    shown = ", ".join(f"{k.variant.name} {primary} {k.metrics.get(primary, float('nan')):.4f}" for k in kept)
    console.print(
        f"kept checkpoints besides the best (step {best_step}): {shown} · open one with checkpoint=<step>"
    )
    if cfg.log_pyfunc and tracker.enabled:
        from toxmod.stages.pyfunc_model import pip_requirements, signature_for  # mlflow.pyfunc

        dataset = prepared.dataset
        data = (dataset.name, str(dataset.path), prepared.split_sha256)
        options = {"signature": signature_for(scheme), "pip_requirements": pip_requirements()}
        log_checkpoint_models(kept, run, tracker, f"{cfg.model.name}-{dataset.name}", data, **options)
    return kept


def _best_step(fitted: FittedModel) -> int | None:
    best = fitted.scorer.fit_report.artifacts.get("checkpoints")
    found = re.search(r"step=(\d+)", best.name) if best is not None else None
    return int(found.group(1)) if found else None


def log_checkpoint_models(
    kept: list[KeptCheckpoint],
    run: RunDir,
    tracker: Tracker,
    name: str,
    data: tuple[str, str, str],
    **options: Any,
) -> None:
    """Each kept checkpoint as an MLflow LoggedModel (pyfunc, ``step`` set) with its valid metrics
    linked to it on the run's valid split (``data``: name, path, split hash)."""
    from toxmod.stages.pyfunc_model import CODE_FILE

    data_name, data_path, split_sha256 = data
    for checkpoint in kept:
        variant, folder = checkpoint.variant, run.checkpoint_folder(checkpoint.variant.name)
        uri = tracker.log_pyfunc_model(
            str(CODE_FILE),
            {"model": str(folder / RunDir.MODEL), "thresholds": str(folder / RunDir.THRESHOLDS)},
            name=f"{name}-{variant.name}",
            the_runs_model=False,  # the run goes on (RUNNING again) and keeps its own pyfunc_model_uri
            step=variant.step,
            params={"checkpoint": variant.name, "step": str(variant.step), "last": str(variant.last).lower()},
            **options,
        )
        if uri is not None:
            tracker.set_tags({f"checkpoint.{variant.name}.model_uri": uri})
            source = {"uri": data_path, "split_sha256": split_sha256, "split": "valid"}
            tracker.link_metrics(uri, f"{data_name}.valid", split_sha256, source, "valid", checkpoint.metrics)
