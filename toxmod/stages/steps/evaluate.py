"""Step 8: the run's numbers -- metrics of every reported split at the fitted thresholds, chance
checks on the holdout, serving latency, and the plots (``plots: false`` skips them)."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from toxmod.config import spec_of
from toxmod.data import LabeledDataset
from toxmod.data.schemes import LabelScheme
from toxmod.evaluation import evaluate_predictions
from toxmod.evaluation.breakdown import breakdown, settings_from
from toxmod.evaluation.latency import measure_throughput
from toxmod.evaluation.plots import write_run_plots
from toxmod.evaluation.sanity import chance_warnings
from toxmod.evaluation.scoring import ScoredSplit
from toxmod.models import Scorer
from toxmod.models.capabilities import latency_limit
from toxmod.progress import StageClock, warn
from toxmod.runs.record import EVALUATION_SPLIT, RunDir, prefixed
from toxmod.runs.tracking import Tracker
from toxmod.spec import EvaluationSpec, LatencySpec
from toxmod.stages.breakdown_report import print_breakdown, write_breakdown_plots
from toxmod.stages.steps.components import Components
from toxmod.stages.steps.fit import FittedModel, training_curves
from toxmod.stages.steps.score import ScoredRun
from toxmod.thresholds import Thresholds


def split_metrics(
    scheme: LabelScheme, scored: ScoredSplit, thresholds: Thresholds, bootstrap: int, seed: int
) -> dict[str, float]:
    """One split's metrics at ``thresholds`` (``bootstrap`` resamples for confidence intervals)."""
    return evaluate_predictions(scheme, scored.scores, scored.targets, thresholds.as_array(), bootstrap, seed)


def evaluate_run(
    cfg: DictConfig,
    run: RunDir,
    fitted: FittedModel,
    scored: ScoredRun,
    holdout_texts: list[str],
    train_rows: int,
    components: Components,
    tracker: Tracker,
    clock: StageClock,
    extra: dict[str, float],
) -> dict[str, float]:
    """Every number the run records (``extra``: the teacher's and calibration's)."""
    scorer, scheme, thresholds = fitted.scorer, components.scheme, scored.thresholds
    metrics = {
        "train_seconds": fitted.train_seconds,
        "train_rows": float(train_rows),
        "scoring_texts_per_second": scored.holdout.texts_per_second,
        "model_size_bytes": float(scorer.size_bytes(run.model)),
        **({"model_parameters": float(scorer.parameter_count)} if scorer.parameter_count else {}),
        **scorer.fit_report.metrics,
        **scored.reports[EVALUATION_SPLIT],
        **extra,
        **thresholds.as_metrics(),
    }
    with clock.stage("evaluate"):
        for name, split in scored.scored.items():
            bootstrap = int(cfg.bootstrap) if name == EVALUATION_SPLIT else 0
            metrics.update(prefixed(name, split_metrics(scheme, split, thresholds, bootstrap, int(cfg.seed))))
    metrics["chance_warnings"] = float(warn_if_chance(scheme, scored.holdout, thresholds, tracker))
    metrics.update(latency(cfg, scorer, holdout_texts))
    if cfg.plots:
        start = time.perf_counter()
        write_run_plots(
            run / RunDir.PLOTS,
            scheme,
            scored.holdout.scores,
            scored.holdout.targets,
            thresholds.as_array(),
            components.fpr_targets,
            training_curves(fitted.context),
        )
        metrics["plots_seconds"] = time.perf_counter() - start
    metrics.update(clock.as_metrics())
    return metrics


def warn_if_chance(scheme: LabelScheme, scored: ScoredSplit, thresholds: Thresholds, tracker: Tracker) -> int:
    """Print (and tag) what says the model is no better than chance on the holdout; how many."""
    predictions = scheme.predict(scored.scores, thresholds.as_array())
    found = chance_warnings(scheme, scored.scores, scored.targets, predictions, EVALUATION_SPLIT)
    for line in found:
        warn(line)
    if found:
        tracker.set_tags({"chance_warnings": " | ".join(found)[:5000]})
    return len(found)


def latency(cfg: DictConfig, scorer: Scorer, texts: list[str]) -> dict[str, float]:
    """Per-text latency at batch 1 (mean, p50, p95) and texts/s at batch 64 on the first holdout texts,
    through the scoring interface, so every run carries comparable serving numbers (``compare``,
    ``report``). A model may ask for fewer texts (``ScoringReports.latency_texts``: an LLM)."""
    settings = spec_of(LatencySpec, cfg.get("latency"))
    metrics: dict[str, float] = {}
    one, many = settings.batch1_texts, settings.batch64_texts
    limit = latency_limit(scorer)
    if limit is not None:
        one, many = min(one, limit), min(many, limit)
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


def holdout_breakdown(
    cfg: DictConfig, run: RunDir, holdout: LabeledDataset, scored: ScoredRun, components: Components
) -> dict[str, float]:
    """The holdout by slice and identity (``evaluation.*``): ``breakdown/`` tables, plots, metrics."""
    settings = settings_from(
        spec_of(EvaluationSpec, cfg.get("evaluation")), int(cfg.bootstrap), int(cfg.seed)
    )
    if not settings.wanted:
        return {}
    split = scored.holdout
    found = breakdown(
        settings, components.scheme, split.scores, split.targets, scored.thresholds.as_array(),
        list(holdout.texts), holdout.columns or {}, components.fpr_targets, f"data file {holdout.path}",
        require_all=False,
    )  # fmt: skip
    folder = run / RunDir.BREAKDOWN
    folder.mkdir(exist_ok=True)
    found.write(folder)
    if cfg.plots:
        write_breakdown_plots(found, run.path)
    print_breakdown(found)
    return prefixed(EVALUATION_SPLIT, found.metrics())
