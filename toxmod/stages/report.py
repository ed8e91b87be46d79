"""The report stage: a markdown report of the finished runs on one split, with plots and paired tests.

``python -m toxmod.report`` picks runs as ``compare`` does (one split hash, finished runs only), reads
each run's recorded metrics and its saved holdout predictions (``predictions/holdout.parquet``), and
writes ``report.md`` with the comparison table, overlaid PR curves of the primary decision, a
quality / latency / size Pareto plot and a paired bootstrap test for each pair of runs. The report
is itself an MLflow run (``task_name=report``) with the markdown and the PNGs as artifacts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from omegaconf import DictConfig

from toxmod.config import instantiate_component, spec_of
from toxmod.data.schemes import LabelScheme, scheme_from_description
from toxmod.display import markdown_cell, markdown_code
from toxmod.errors import ConfigError, DamagedFileError, ToxmodError
from toxmod.evaluation.paired import PairedDifference, paired_bootstrap
from toxmod.evaluation.plots import operating_point, pareto_front, write_pareto, write_pr_overlay
from toxmod.files import read_json
from toxmod.models.base import SCORER_FILE
from toxmod.progress import console
from toxmod.runs.budget import budget_note
from toxmod.runs.provenance import environment_notes
from toxmod.runs.record import RunDir, read_predictions
from toxmod.runs.store import NoStore, RunStore, StoredRun
from toxmod.runs.tracking import KIND_TAG
from toxmod.spec import PathsSpec
from toxmod.stages.compare import select_runs
from toxmod.stages.report_evaluations import collect, sections
from toxmod.tables import rows_text
from toxmod.thresholds import Thresholds

PREDICTIONS = f"{RunDir.PREDICTIONS}/holdout.parquet"


@dataclass
class ReportedRun:
    """One run in the report: its record, and its holdout rows when they were saved."""

    run: StoredRun
    label: str  # short, unique: the run name (or id) shown in tables and plots
    scheme: LabelScheme | None = None
    thresholds: Thresholds | None = None
    ids: np.ndarray | None = None
    targets: np.ndarray | None = None
    scores: np.ndarray | None = None

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Thresholds]:
        """ids, targets, scores and thresholds of a run whose holdout rows were read."""
        ids, targets, scores, thresholds = self.ids, self.targets, self.scores, self.thresholds
        assert ids is not None and targets is not None and scores is not None and thresholds is not None
        return ids, targets, scores, thresholds

    def metric(self, name: str) -> float | None:
        value = self.run.metrics.get(name)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass(frozen=True)
class Report:
    directory: Path
    markdown: Path
    runs: list[ReportedRun]
    pairs: list[tuple[str, str, list[PairedDifference]]]
    split_sha256: str
    run_id: str | None


REPORTS_SUFFIX = "-reports"  # report runs go to "<experiment>-reports", apart from the model runs


def report(cfg: DictConfig, output_dir: str | Path) -> Report:
    """Select the runs, read their predictions, write the report, record it as an MLflow run."""
    tracker = instantiate_component(cfg.tracking, "tracking")
    store = tracker.store()
    if isinstance(store, NoStore):
        raise ToxmodError("report reads the MLflow store; it cannot run with tracking=none")
    store.require("report")
    comparison = select_runs(
        store,
        cfg.get("split_sha256"),
        list(cfg.runs) if cfg.get("runs") else None,
        allow_mixed_splits=False,
        experiments=list(cfg.experiments) if cfg.get("experiments") else None,
        max_runs=int(cfg.max_runs),
    )
    if comparison.split_sha256 is None:
        raise ToxmodError("report needs runs on one split")
    directory = Path(str(cfg.get("output") or output_dir)).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    cache = spec_of(PathsSpec, cfg.paths).downloads
    runs = [_read_run(store, run, cache) for run in comparison.runs]
    _unique_labels(runs)
    scheme = _scheme(runs)
    primary = scheme.primary_label
    sort_metric = str(cfg.get("sort_by") or f"holdout/{primary}/recall")
    runs.sort(key=lambda r: (r.metric(sort_metric) is None, -(r.metric(sort_metric) or 0.0)))
    with_rows = [r for r in runs if r.scores is not None]
    _check_same_rows(with_rows)

    pairs = []
    for a, b in _pairs(cfg.get("compare_pairs"), runs, with_rows):
        _, targets, a_scores, a_thresholds = a.rows()
        _, _, b_scores, b_thresholds = b.rows()
        differences = paired_bootstrap(
            scheme,
            targets,
            a_scores,
            a_thresholds.as_array(),
            b_scores,
            b_thresholds.as_array(),
            resamples=int(cfg.resamples),
            seed=int(cfg.seed),
        )
        pairs.append((a.label, b.label, differences))

    images = _plots(directory, scheme, runs, with_rows)
    more, more_images = sections(collect(store, [(r.label, r.run) for r in runs], cache), directory)
    markdown = directory / "report.md"
    page = _markdown(scheme, comparison.split_sha256, runs, pairs, images, comparison.left_out, cfg)
    markdown.write_text("\n".join([page, "", *more]).rstrip() + "\n")
    images += more_images
    (directory / "report.json").write_text(
        json.dumps(
            {
                "split_sha256": comparison.split_sha256,
                "runs": [r.run.run_id for r in runs],
                "pairs": [{"a": a, "b": b, "results": [d.as_dict() for d in ds]} for a, b, ds in pairs],
            },
            indent=2,
        )
        + "\n"
    )
    experiments = {r.run.experiment_id for r in runs}
    if cfg.get("record_in"):
        tracker.experiment_name = str(cfg.record_in)
    elif len(experiments) == 1:  # an experiment of its own beside the runs': not among the models
        tracker.experiment_name = f"{store.experiment_name(experiments.pop())}{REPORTS_SUFFIX}"
    run_id = None
    tags = {
        KIND_TAG: "report",
        "task_name": "report",
        "report.split_sha256": comparison.split_sha256,
        "report.runs": str(len(runs)),
    }
    with tracker.run(run_name=f"report {comparison.split_sha256[:12]}", tags=tags):
        run_id = tracker.run_id
        for path in [markdown, directory / "report.json", *images]:
            tracker.log_artifact(path, "report")
    console.print(f"wrote {markdown} ({len(runs)} runs, {len(pairs)} paired tests); MLflow run {run_id}")
    return Report(directory, markdown, runs, pairs, comparison.split_sha256, run_id)


def _read_run(store: RunStore, run: StoredRun, cache: Path) -> ReportedRun:
    """The run's thresholds and holdout predictions, from its directory when it is on this machine,
    else from its MLflow artifacts."""
    reported = ReportedRun(run, run.name or run.run_id[:8])
    local = Path(run.tags.get("run_dir", "")) if run.tags.get("run_dir") else None
    wanted = (PREDICTIONS, RunDir.THRESHOLDS, f"{RunDir.MODEL}/{SCORER_FILE}")
    if local is not None and (local / PREDICTIONS).is_file():
        predictions, thresholds, description_path = (local / path for path in wanted)
    else:
        from mlflow.exceptions import MlflowException

        try:  # MLflow returns where it put each file
            predictions, thresholds, description_path = (
                store.download_artifact(run.run_id, path, cache / run.run_id / Path(path).parent)
                for path in wanted
            )
        except (MlflowException, OSError) as error:  # e.g. an older run without saved predictions
            console.print(f"{reported.label}: in the table only, no holdout rows ({str(error)[:120]})")
            return reported
    description = read_json(description_path)
    try:
        scheme = scheme_from_description(description["scheme"])
    except (KeyError, TypeError, ValueError) as error:
        raise DamagedFileError(f"{description_path}: not a label scheme ({error!r})") from None
    reported.thresholds = Thresholds.load(thresholds, scheme)
    reported.ids, reported.targets, reported.scores = read_predictions(predictions, scheme.output_names)
    reported.scheme = scheme
    return reported


def _unique_labels(runs: list[ReportedRun]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:
        if seen[run.label] > 1:
            run.label = f"{run.label} ({run.run.run_id[:6]})"


def _scheme(runs: list[ReportedRun]) -> LabelScheme:
    schemes = [r.scheme for r in runs if r.scheme is not None]
    if not schemes:
        raise ToxmodError(
            "none of these runs saved holdout predictions (predictions/holdout.parquet); re-run them "
            "with this version of toxmod to report on them"
        )
    return schemes[0]


def _check_same_rows(runs: list[ReportedRun]) -> None:
    if runs and any(not np.array_equal(r.rows()[0], runs[0].rows()[0]) for r in runs[1:]):
        raise DamagedFileError(
            "the runs' holdout predictions are not over the same rows despite one split hash"
        )


def _find(ref: str, runs: list[ReportedRun]) -> ReportedRun:
    matches = [r for r in runs if r.run.run_id.startswith(ref) or r.label == ref or r.run.name == ref]
    if len(matches) != 1:
        raise ConfigError(f"compare_pairs: {ref!r} names {len(matches)} of the reported runs (use a run id)")
    return matches[0]


def _pairs(
    configured: Sequence[Sequence[str]] | None, runs: list[ReportedRun], with_rows: list[ReportedRun]
) -> list[tuple[ReportedRun, ReportedRun]]:
    """The named pairs, or the best run (first) against each other run with saved predictions."""
    if configured:
        pairs = [(_find(str(a), runs), _find(str(b), runs)) for a, b in configured]
        missing = [r.label for pair in pairs for r in pair if r.scores is None]
        if missing:
            raise ConfigError(f"compare_pairs: {missing} saved no holdout predictions to resample")
        return pairs
    if len(with_rows) < 2:
        return []
    best = with_rows[0]
    return [(best, other) for other in with_rows[1:]]


def _plots(
    directory: Path, scheme: LabelScheme, runs: list[ReportedRun], with_rows: list[ReportedRun]
) -> list[Path]:
    primary = scheme.primary_decision
    j = scheme.decision_names.index(primary)
    images = []
    if with_rows:
        curves = {}
        for r in with_rows:
            _, targets, run_scores, thresholds = r.rows()
            truth = scheme.decision_targets(targets)[:, j].astype(bool)
            scores = scheme.decision_scores(run_scores)[:, j]
            recall, precision, _ = operating_point(truth, scores, thresholds.as_array()[j])
            curves[r.label] = (truth, scores, (recall, precision))
        images.append(write_pr_overlay(directory / f"pr_{primary}.png", f"{primary} (holdout)", curves))
    latency = "latency/batch1_ms_per_text"
    quality = f"holdout/{scheme.primary_label}/recall"
    points: dict[str, tuple[float, float, float]] = {}
    for r in runs:
        speed, found = r.metric(latency), r.metric(quality)
        if speed is not None and found is not None:
            points[r.label] = (speed, found, (r.metric("model_size_bytes") or 0.0) / 1e6)
    if points:
        images.append(
            write_pareto(
                directory / "pareto.png",
                "quality vs latency (marker area: size)",
                "ms per text at batch 1",
                f"{scheme.primary_label} recall at the calib threshold (holdout)",
                points,
            )
        )
    return images


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _markdown(
    scheme: LabelScheme,
    split: str,
    runs: list[ReportedRun],
    pairs: list[tuple[str, str, list[PairedDifference]]],
    images: list[Path],
    left_out: dict[str, int],
    cfg: DictConfig,
) -> str:
    primary, headline = scheme.primary_label, scheme.headline_name
    columns = [
        "model",
        "run",
        headline,
        "macro F1",
        f"{primary} recall [95% CI]",
        f"{primary} FPR",
        "FPR budget",
        "environment",
        "ROC-AUC",
        "ms/text b=1",
        "texts/s b=64",
        "params M",
        "size MB",
        "train s",
    ]
    rows = []
    environments = environment_notes([r.run for r in runs])
    for r in runs:
        m = r.metric
        recall = m(f"holdout/{primary}/recall")
        low, high = m(f"holdout/{primary}/recall_ci_low"), m(f"holdout/{primary}/recall_ci_high")
        interval = f" [{_fmt(low, 3)}, {_fmt(high, 3)}]" if low is not None and high is not None else ""
        params = m("model_parameters")
        rows.append(
            [
                r.label,
                r.run.run_id[:8],
                _fmt(m(f"holdout/{headline}")),
                _fmt(m("holdout/macro_f1")),
                _fmt(recall) + interval,
                _fmt(m(f"holdout/{primary}/fpr")),
                budget_note(r.run),
                environments[r.run.run_id] or "same",
                _fmt(m(f"holdout/{primary}/roc_auc") or m("holdout/mean_roc_auc")),
                _fmt(m("latency/batch1_ms_per_text"), 2),
                _fmt(m("latency/batch64_texts_per_second"), 0),
                _fmt(params / 1e6 if params else None, 2),
                _fmt((m("model_size_bytes") or 0) / 1e6 if m("model_size_bytes") else None, 2),
                _fmt(m("train_seconds"), 1),
            ]
        )
    sort_by = cfg.get("sort_by") or f"holdout/{primary}/recall"
    lines = [
        f"# Report: {len(runs)} runs on split {markdown_code(split[:16] + '…')}",
        "",
        f"Every number is on the holdout of split {markdown_code(split)}, at each run's own thresholds "
        f"(chosen on calib). Sorted by {markdown_code(sort_by)}. FPR budget: `ok` when "
        "every thresholded decision's FPR is within its own target on valid and holdout, else `OVER` and "
        "which. Latency: "
        "`latency/batch1_ms_per_text` and `latency/batch64_texts_per_second`, measured by each run.",
        "",
        rows_text(columns, rows, "markdown").rstrip(),
        "",
    ]
    if pairs:
        rows_compared = next(len(r.ids) for r in runs if r.ids is not None)
        lines += [
            "## Paired bootstrap",
            "",
            f"A minus B on the same {rows_compared} holdout rows, resampled "
            f"together {int(cfg.resamples)} times (seed {int(cfg.seed)}): the difference, its 95% percentile "
            "interval and a two-sided p-value. An interval that contains 0 means this holdout cannot tell "
            "the two apart.",
            "",
        ]
        pair_rows = []
        for a, b, differences in pairs:
            for d in differences:
                name = f"{primary} recall" if d.metric == "primary_recall" else "macro F1"
                verdict = "differ" if d.ci_low > 0 or d.ci_high < 0 else "not distinguishable"
                pair_rows.append(
                    [
                        a,
                        b,
                        name,
                        _fmt(d.value_a),
                        _fmt(d.value_b),
                        f"{d.difference:+.4f}",
                        f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]",
                        f"{d.p_value:.4f}",
                        verdict,
                    ]
                )
        pair_columns = ["A", "B", "metric", "A value", "B value", "A - B", "95% CI", "p", "verdict"]
        lines += [rows_text(pair_columns, pair_rows, "markdown").rstrip(), ""]
    without = [r.label for r in runs if r.scores is None]
    if without:
        lines += [
            "Runs without saved holdout predictions (no curves, no paired tests): "
            + ", ".join(markdown_cell(label) for label in without),
            "",
        ]
    for image in images:
        lines += [f"![{markdown_cell(image.stem)}]({quote(image.name)})", ""]
    for other, count in left_out.items():
        lines += [f"Left out: {count} run(s) on another split ({markdown_code(other[:12])}).", ""]
    usable: dict[str, tuple[float, float]] = {}
    for r in runs:
        speed, recall = r.metric("latency/batch1_ms_per_text"), r.metric(f"holdout/{primary}/recall")
        if speed is not None and recall is not None:
            usable[r.label] = (speed, recall)
    if usable:
        names = list(usable)
        front = [names[i] for i in pareto_front([usable[n] for n in names])]
        shown = ", ".join(markdown_cell(name) for name in front)
        lines += [f"Pareto front (faster or better, not both beaten): {shown}", ""]
    return "\n".join(lines)
