"""The evaluate stage: score a finished run again -- on its own split (checked against what it
recorded), on any other labelled data (``data=``, with a label mapping), or on a functional test
suite (``suite=``) -- with slices and bias metrics (``evaluation.*``), and record an evaluation run.

Reloads the run's resolved config, model and thresholds (its frozen split, hashes verified against the
data file, when its own data is scored); every number is at the run's own thresholds. The files go to
the output folder (``evaluation.json``, ``slices.csv``, ``bias.csv``, ``suite.json``, plots) and into an
MLflow evaluation run linked to the run's logged model and the dataset (``runs/evaluations.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from toxmod.config import as_dict, hardware_of, instantiate_component, spec_of
from toxmod.data import LabelScheme
from toxmod.environment import differences, environment
from toxmod.errors import ConfigError
from toxmod.evaluation.breakdown import Breakdown, BreakdownSettings, breakdown, check_columns, settings_from
from toxmod.evaluation.scoring import score_split
from toxmod.evaluation.suites import SuiteResult
from toxmod.evaluation.transfer import LabelMapping, MappedView
from toxmod.files import read_json
from toxmod.hardware import CPU, HardwareSettings, apply_threads
from toxmod.models import Opening
from toxmod.models.capabilities import place
from toxmod.progress import console
from toxmod.runs.evaluations import ScoredData, evaluated_run, record_evaluation
from toxmod.runs.opening import OpenedModel, default_opening, load_data, open_model, opening_from_config
from toxmod.runs.record import EVALUATION_SPLIT, RunDir, prefixed
from toxmod.runs.store import NoStore, RunStore
from toxmod.spec import EvaluationSpec, PathsSpec
from toxmod.stages.breakdown_report import print_breakdown, write_breakdown_plots
from toxmod.stages.steps.evaluate import split_metrics
from toxmod.stages.suite import (
    load_suite,
    print_suite,
    run_suite,
    suite_evaluation,
    suite_format,
    write_suite,
)
from toxmod.stages.transfer import ScoredRows, map_from_config, score_other_data
from toxmod.tables import headline_table, results_table

REPRODUCTION_TOLERANCE = 1e-9
EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one set of rows of a finished run (its own split, or other data), how they compare
    with what the run recorded, and what else was asked: slices, bias, a suite."""

    run_dir: Path
    subset: str  # the split, or the other data's name
    scheme: LabelScheme  # the scheme the metrics are in (other data: one label per mapped pair)
    thresholds: dict[str, float]
    metrics: dict[str, float]
    recorded: dict[str, float] | None
    max_difference: float | None
    environment_differences: list[str] = dataclasses.field(default_factory=list)
    rows: ScoredRows | None = None
    breakdown: Breakdown | None = None
    suite: SuiteResult | None = None
    evaluation_run_id: str | None = None

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
    run id is looked up and downloaded.
    """
    opening = opening or default_opening()
    opened = open_model(run_dir, store, cache_dir, allow_pickle, opening)
    place(opened.scorer, hardware)
    return _own_split(opened, opening, subset, bootstrap, seed, hardware, data_path, BreakdownSettings())


def _own_split(
    opened: OpenedModel,
    opening: Opening,
    subset: str,
    bootstrap: int | None,
    seed: int | None,
    hardware: HardwareSettings,
    data_path: str | Path | None,
    settings: BreakdownSettings,
) -> Evaluation:
    run = load_data(opened, opening, data_path, settings.data_columns())
    part = run.part(subset)
    check_columns(settings, list(part.texts), part.columns or {}, f"data file {run.dataset.path}")
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
    split_sha256 = str(read_json(RunDir(run.directory).holdout_eval).get("split_sha256", ""))
    view = MappedView(scheme, scored.scores, part.targets, run.thresholds.as_array())
    rows = ScoredRows(
        f"{run.dataset.name}.{subset}",
        split_sha256 or run.dataset.sha256,
        {"uri": str(run.dataset.path), "split_sha256": split_sha256, "split": subset},
        view,
        list(part.texts),
        part.columns or {},
        values,
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
        rows,
    )


def evaluate(cfg: DictConfig, output_dir: Path) -> Evaluation:
    """``run=<run dir, run id or models:/name@alias>``: open the run, score what was asked, report,
    write the files into ``output_dir`` and record an evaluation run (``record``)."""
    hardware = hardware_of(cfg.hardware)
    apply_threads(hardware)
    tracker = instantiate_component(cfg.tracking, "tracking")
    store = tracker.store()
    opening = opening_from_config(cfg)
    other = cfg.get("data") is not None
    given_map = map_from_config(cfg.get("label_map"))
    if given_map and not other:
        raise ConfigError("label_map maps the run's decisions to other data's labels: give data=... with it")
    form = suite_format(cfg.suite_format)
    suite = load_suite(cfg.suite, form) if cfg.get("suite") else None  # a bad suite before any scoring
    downloads = spec_of(PathsSpec, cfg.paths).downloads
    checkpoint = cfg.get("checkpoint")
    opened = open_model(str(cfg.run), store, downloads, bool(cfg.allow_pickle), opening, checkpoint)
    place(opened.scorer, hardware)
    bootstrap = int(opened.config.get("bootstrap", 1000) if cfg.bootstrap is None else cfg.bootstrap)
    seed = int(opened.config.get("seed", 0) if cfg.seed is None else cfg.seed)
    settings = settings_from(spec_of(EvaluationSpec, cfg.evaluation), bootstrap, seed)
    evaluation: Evaluation | None = None
    if other:
        rows = score_other_data(
            opened, cfg.data, cfg.get("data_split"), given_map, settings, opening, bootstrap, seed
        )
        evaluation = Evaluation(
            opened.directory, rows.name, rows.view.scheme,
            dict(zip(rows.view.scheme.decision_names, rows.view.thresholds.tolist())),
            prefixed("data", rows.metrics), None, None, [], rows,
        )  # fmt: skip
    elif suite is None or settings.wanted:
        evaluation = _own_split(
            opened, opening, str(cfg.subset), bootstrap, seed, hardware, cfg.get("data_path"), settings
        )
    if evaluation is not None and evaluation.rows is not None and settings.wanted:
        evaluation = dataclasses.replace(evaluation, breakdown=_breakdown(evaluation.rows, opened, settings))
    suite_result = run_suite(opened, suite, form, cfg.suite_format.get("decision")) if suite else None
    if evaluation is None:
        evaluation = Evaluation(
            opened.directory, "suite", opened.scheme, opened.thresholds.as_dict(), {}, None, None
        )
    evaluation = dataclasses.replace(evaluation, suite=suite_result)
    report(evaluation)
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_files(evaluation, output_dir)
    if cfg.record and not isinstance(store, NoStore):
        run_id = _record(cfg, tracker, store, opened.run, evaluation, suite, form, output_dir)
        evaluation = dataclasses.replace(evaluation, evaluation_run_id=run_id)
    return evaluation


def _breakdown(rows: ScoredRows, opened: OpenedModel, settings: BreakdownSettings) -> Breakdown:
    view = rows.view
    return breakdown(
        settings, view.scheme, view.scores, view.targets, view.thresholds, rows.texts, rows.columns,
        rows.fpr_targets(opened.thresholds.fpr_targets()), f"data {rows.source.get('uri', rows.name)}",
    )  # fmt: skip


def _write_files(evaluation: Evaluation, folder: Path) -> None:
    """``<subset>_eval.json`` / ``evaluation.json`` with every number, the tables and plots."""
    if evaluation.rows is not None:
        name = f"{evaluation.subset}_eval.json" if evaluation.recorded is not None else EVALUATION_FILE
        record: dict[str, Any] = dict(evaluation.metrics)
        if evaluation.recorded is None:
            mapping: LabelMapping | None = evaluation.rows.mapping
            record = {
                "run_dir": str(evaluation.run_dir),
                "dataset": evaluation.rows.name,
                "dataset_digest": evaluation.rows.digest,
                "label_map": mapping.as_dict() if mapping else None,
                "thresholds": evaluation.thresholds,
                "metrics": evaluation.metrics,
                "breakdown": evaluation.breakdown.metrics() if evaluation.breakdown else {},
            }
        (folder / name).write_text(json.dumps(record, indent=2) + "\n")
    if evaluation.breakdown is not None:
        evaluation.breakdown.write(folder)
        write_breakdown_plots(evaluation.breakdown, folder)
    if evaluation.suite is not None:
        write_suite(evaluation.suite, folder)


def _record(
    cfg: DictConfig,
    tracker: Any,
    store: RunStore,
    run: RunDir,
    evaluation: Evaluation,
    suite: Any,
    form: Any,
    folder: Path,
) -> str | None:
    evaluated = evaluated_run(store, run)
    scored: list[ScoredData] = []
    tags: dict[str, str] = {}
    if evaluation.rows is not None:
        rows = evaluation.rows
        metrics = {**rows.metrics, **(evaluation.breakdown.metrics() if evaluation.breakdown else {})}
        context = evaluation.subset if evaluation.recorded is not None else "evaluation"
        scored.append(ScoredData(rows.name, rows.digest, rows.source, context, metrics))
        tags |= {"dataset": rows.name, "dataset_digest": rows.digest}
    if evaluation.suite is not None and suite is not None:
        suite_scored, suite_tags = suite_evaluation(suite, form, cfg.suite_format.decision, evaluation.suite)
        scored.append(suite_scored)
        tags |= suite_tags
    params = {"run": str(cfg.run), "label_map": json.dumps(map_from_config(cfg.get("label_map")))}
    params |= {f"evaluation.{k}": json.dumps(v) for k, v in as_dict(cfg.evaluation).items()}
    what = " + ".join(s.name for s in scored)
    name = f"eval {evaluated.stored.name if evaluated.stored else run.path.name} on {what}"
    run_id = record_evaluation(tracker, evaluated, name[:250], scored, params, tags, folder)
    if run_id:
        linked = "linked to its logged model" if evaluated.model_uri else "no logged model to link"
        console.print(f"evaluation run {run_id[:8]} in experiment {tracker.experiment_name} ({linked})")
    return run_id


def report(evaluation: Evaluation) -> None:
    """The per-label table, the headline metrics, the reproduction verdict, slices, bias, suite."""
    scheme = evaluation.scheme
    if evaluation.rows is not None:
        split = evaluation.subset if evaluation.recorded is not None else "data"
        title = f"{evaluation.run_dir.name} on {evaluation.rows.name}"
        console.print(results_table(title, split, scheme, evaluation.metrics, evaluation.thresholds))
        names = ["macro_f1", "weighted_f1", scheme.headline_name, "mean_roc_auc"]
        console.print(headline_table(split, evaluation.metrics, names))
        if evaluation.rows.mapping is not None and not evaluation.rows.mapping.same_scheme:
            pairs = ", ".join(f"{r} -> {d}" for r, d in evaluation.rows.mapping.pairs)
            console.print(f"scored the run's decisions against the data's labels: {pairs}", soft_wrap=True)
    if evaluation.reproduced is not None:
        verdict = "reproduced" if evaluation.reproduced else "NOT reproduced"
        source = RunDir.HOLDOUT_EVAL if evaluation.subset == EVALUATION_SPLIT else RunDir.METRICS
        console.print(f"{verdict}: max |difference| from {source} = {evaluation.max_difference:.3g}")
    if evaluation.environment_differences:
        changed = "; ".join(evaluation.environment_differences)
        console.print(f"environment differs from the run's ({RunDir.ENVIRONMENT}): {changed}", soft_wrap=True)
    if evaluation.breakdown is not None:
        print_breakdown(evaluation.breakdown)
    if evaluation.suite is not None:
        print_suite(evaluation.suite)
