"""The evaluate stage: re-score one split of a finished run and check it against what the run recorded.

Reloads the run's resolved config, frozen split (hashes verified against the data file), model and
thresholds, scores the chosen split through the scoring interface, and compares the numbers with
the run's own ``holdout_eval.json`` (or ``metrics.json`` for the other splits).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from toxmod.config import instantiate_component
from toxmod.data import LabelScheme
from toxmod.environment import differences, environment
from toxmod.evaluation.scoring import score_split
from toxmod.files import read_json
from toxmod.hardware import CPU, HardwareSettings, apply_threads, resolve_hardware
from toxmod.models import Opening
from toxmod.models.capabilities import place
from toxmod.progress import console
from toxmod.runs.opening import load_run, opening_from_config
from toxmod.runs.record import (
    EVALUATION_SPLIT,
    RunDir,
    prefixed,
)
from toxmod.runs.store import NoStore, RunStore
from toxmod.stages.steps.evaluate import split_metrics
from toxmod.tables import headline_table, results_table

REPRODUCTION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one split of a finished run, and how they compare with what the run recorded."""

    run_dir: Path
    subset: str
    scheme: LabelScheme
    thresholds: dict[str, float]
    metrics: dict[str, float]
    recorded: dict[str, float] | None
    max_difference: float | None
    environment_differences: list[str] = dataclasses.field(default_factory=list)

    @property
    def reproduced(self) -> bool | None:
        return None if self.max_difference is None else self.max_difference <= REPRODUCTION_TOLERANCE


def evaluate_run(
    run_dir: str | Path,
    subset: str = "holdout",
    bootstrap: int | None = None,
    seed: int | None = None,
    hardware: HardwareSettings = CPU,
    allow_pickle: bool = False,
    opening: Opening | None = None,
    data_path: str | Path | None = None,
    store: RunStore | NoStore | None = None,
    cache_dir: Path | None = None,
) -> Evaluation:
    """Re-score ``subset`` of the run stored in ``run_dir`` (bootstrap and seed default to the run's).

    ``allow_pickle``: also open a model saved in the older pickle format (only a run you trust);
    ``opening`` and ``data_path``: what only the opener chooses; ``store`` and ``cache_dir``: where a
    run id is looked up and downloaded (``load_run``).
    """
    run = load_run(run_dir, store, cache_dir, allow_pickle, opening, data_path)
    place(run.scorer, hardware)
    part = run.part(subset)
    bootstrap = int(run.config.get("bootstrap", 1000) if bootstrap is None else bootstrap)
    seed = int(run.config.get("seed", 0) if seed is None else seed)
    scored = score_split(run.scorer, part)
    scheme = run.dataset.scheme
    values = split_metrics(scheme, scored, run.thresholds, bootstrap, seed)
    recorded = run.recorded_metrics(subset)
    shared = [k for k in values if recorded.get(k) is not None and not math.isnan(values[k])]
    difference = max((abs(values[k] - recorded[k]) for k in shared), default=0.0) if shared else None
    saved = RunDir(run.directory) / RunDir.ENVIRONMENT
    env_differences = (
        differences(read_json(saved), environment(hardware.threads)) if saved.is_file() else ["not recorded"]
    )
    return Evaluation(
        run.directory,
        subset,
        scheme,
        run.thresholds.as_dict(),
        prefixed(subset, values),
        recorded or None,
        difference,
        env_differences,
    )


def evaluate(cfg: DictConfig, output_dir: Path) -> Evaluation:
    """``run=<run dir or run id>``: open the run (downloading a run id's files), re-score, report.

    Writes ``<subset>_eval.json`` into ``output_dir``.
    """
    hardware = resolve_hardware(cfg.hardware)
    apply_threads(hardware)
    store = instantiate_component(cfg.tracking, "tracking").store()
    evaluation = evaluate_run(
        str(cfg.run),
        str(cfg.subset),
        cfg.bootstrap,
        cfg.seed,
        hardware,
        bool(cfg.allow_pickle),
        opening_from_config(cfg),
        cfg.get("data_path"),
        store,
        Path(str(cfg.paths.downloads)),
    )
    report(evaluation)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{evaluation.subset}_eval.json").write_text(
        json.dumps(evaluation.metrics, indent=2) + "\n"
    )
    return evaluation


def report(evaluation: Evaluation) -> None:
    """The per-label table, the headline metrics and the reproduction verdict."""
    scheme = evaluation.scheme
    title = f"{evaluation.run_dir.name} {evaluation.subset}"
    console.print(results_table(title, evaluation.subset, scheme, evaluation.metrics, evaluation.thresholds))
    names = ["macro_f1", "weighted_f1", scheme.headline_name, "mean_roc_auc"]
    console.print(headline_table(evaluation.subset, evaluation.metrics, names))
    if evaluation.reproduced is not None:
        verdict = "reproduced" if evaluation.reproduced else "NOT reproduced"
        source = RunDir.HOLDOUT_EVAL if evaluation.subset == EVALUATION_SPLIT else RunDir.METRICS
        console.print(f"{verdict}: max |difference| from {source} = {evaluation.max_difference:.3g}")
    if evaluation.environment_differences:
        changed = "; ".join(evaluation.environment_differences)
        console.print(f"environment differs from the run's ({RunDir.ENVIRONMENT}): {changed}", soft_wrap=True)
