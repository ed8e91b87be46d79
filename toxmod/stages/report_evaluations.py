"""The report's sections beyond the holdout headline: each run's evaluations on other datasets and
suites, its slices (holdout and other data) and its bias metrics -- tables with the worst first, and
the same plots ``toxmod.evaluate`` draws, from the tables the runs recorded."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from toxmod.data.readers import read_table
from toxmod.display import markdown_cell, markdown_code
from toxmod.evaluation.bias import BIAS_AUCS
from toxmod.evaluation.breakdown import BIAS_FILE, SLICES_FILE
from toxmod.evaluation.breakdown_plots import slice_plot_name, write_bias_plot, write_slice_plot
from toxmod.evaluation.plots import safe_name
from toxmod.runs.evaluations import EVALUATED_TAG, EVALUATION_KIND
from toxmod.runs.record import RunDir
from toxmod.runs.store import FINISHED, RunStore, StoredRun
from toxmod.runs.tracking import KIND_TAG
from toxmod.tables import rows_text

SHOWN_SLICES = 12  # rows of a slice table in the report (the flagged and worst first)
SHOWN_IDENTITIES = 10


@dataclass
class Scored:
    """One set of rows a run was scored on: its holdout, or an evaluation run's dataset or suite."""

    run_label: str
    source: str  # "holdout" or the dataset / suite name
    metrics: dict[str, float]
    slices: list[dict[str, Any]] = field(default_factory=list)
    bias: list[dict[str, Any]] = field(default_factory=list)
    evaluation_run: str | None = None


def _table(store: RunStore, run_id: str, path: str, local: Path | None, cache: Path) -> list[dict[str, Any]]:
    """A recorded CSV table as records: from the run folder on this machine, else downloaded."""
    if local is not None and (local / path).is_file():
        file = local / path
    else:
        if not store.has_artifact(run_id, path):
            return []
        file = store.download_artifact(run_id, path, cache / run_id / Path(path).parent)
    frame = read_table(file)  # within limits: a store's files are not all toxmod's
    return [{str(k): _value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _value(value: Any) -> Any:
    if isinstance(value, str) and value == "":
        return math.nan
    return value


def collect(store: RunStore, runs: list[tuple[str, StoredRun]], cache: Path) -> list[Scored]:
    """For each (label, run): its holdout breakdown, when it recorded one, and every FINISHED
    evaluation run of it (newest first)."""
    found = []
    for label, run in runs:
        local = Path(run.tags["run_dir"]) if run.tags.get("run_dir") else None
        slices = _table(store, run.run_id, f"{RunDir.BREAKDOWN}/{SLICES_FILE}", local, cache)
        bias = _table(store, run.run_id, f"{RunDir.BREAKDOWN}/{BIAS_FILE}", local, cache)
        if slices or bias:
            holdout = {
                k.removeprefix("holdout/"): v for k, v in run.metrics.items() if k.startswith("holdout/")
            }
            found.append(Scored(label, "holdout", holdout, slices, bias))
        tags = {EVALUATED_TAG: run.run_id, KIND_TAG: EVALUATION_KIND}
        seen = set()
        for evaluation in store.search(None, FINISHED, tags, 50):  # newest first: one per data and suite
            same = tuple(evaluation.tags.get(k) for k in ("dataset_digest", "suite_digest"))
            if same in seen:
                continue
            seen.add(same)
            source = evaluation.tags.get("dataset") or ""
            suite = evaluation.tags.get("suite")
            name = " + ".join(n for n in (source, suite and f"suite {suite}") if n)
            found.append(
                Scored(
                    label,
                    name or evaluation.run_id[:8],
                    dict(evaluation.metrics),
                    _table(store, evaluation.run_id, SLICES_FILE, None, cache),
                    _table(store, evaluation.run_id, BIAS_FILE, None, cache),
                    evaluation.run_id,
                )
            )
    return found


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)  # rows_text makes every cell inert
    return "" if math.isnan(number) else f"{number:.{digits}f}"


def sections(scored: list[Scored], directory: Path) -> tuple[list[str], list[Path]]:
    """Markdown lines and the plots they show."""
    lines: list[str] = []
    images: list[Path] = []
    others = [s for s in scored if s.evaluation_run]
    if others:
        columns = ["model", "scored on", "eval run", "n", "macro F1", "mean ROC-AUC", "bias final"]
        columns += ["suite pass", "suite balanced"]
        rows = [
            [s.run_label, s.source, s.evaluation_run[:8] if s.evaluation_run else ""]
            + [_fmt(s.metrics.get("n_examples"), 0), _fmt(s.metrics.get("macro_f1"))]
            + [_fmt(s.metrics.get("mean_roc_auc")), _fmt(s.metrics.get("bias/final_score"), 4)]
            + [_fmt(s.metrics.get("suite/pass_rate")), _fmt(s.metrics.get("suite/balanced_pass_rate"))]
            for s in others
        ]
        lines += [
            "## Other datasets and suites",
            "",
            "Each `python -m toxmod.evaluate` of a run on other labelled data or a functional test suite, at "
            "the run's own thresholds (macro F1 over the mapped labels; suite pass rates per case and "
            "balanced over expected labels).",
            "",
            rows_text(columns, rows, "markdown").rstrip(),
            "",
        ]
    for s in scored:
        slice_lines, slice_images = _slice_section(s, directory)
        bias_lines, bias_images = _bias_section(s, directory)
        lines += slice_lines + bias_lines
        images += slice_images + bias_images
    return lines, images


def _slice_section(s: Scored, directory: Path) -> tuple[list[str], list[Path]]:
    lines, images = [], []
    for family in dict.fromkeys(str(r["family"]) for r in s.slices):
        rows = [r for r in s.slices if str(r["family"]) == family]
        rows.sort(key=lambda r: (not _text(r.get("flag")), -_num(r.get("fpr"))))
        table = [
            [r["slice"], r["decision"], _fmt(r["n"], 0), _fmt(r["positives"], 0), _fmt(r["negatives"], 0)]
            + [_interval(r, "recall"), _interval(r, "fpr"), _fmt(r.get("precision")), _fmt(r.get("f1"))]
            + [_text(r.get("flag")) or _text(r.get("note"))]
            for r in rows[:SHOWN_SLICES]
        ]
        columns = ["slice", "decision", "n", "pos", "neg", "recall [95% CI]", "FPR [95% CI]"]
        columns += ["precision", "F1", "flag / note"]
        title = (
            f"## Slices by {markdown_code(family)}: {markdown_cell(s.run_label)} on {markdown_cell(s.source)}"
        )
        lines += [title, "", rows_text(columns, table, "markdown").rstrip(), ""]
        if len(rows) > SHOWN_SLICES:
            lines += [f"({len(rows) - SHOWN_SLICES} more rows in the run's `{SLICES_FILE}`.)", ""]
        for decision in dict.fromkeys(str(r["decision"]) for r in rows):
            name = f"{safe_name(s.run_label)}_{safe_name(s.source)}_{slice_plot_name(family, decision)}"
            path = write_slice_plot(rows, family, decision, directory / name)
            if path is not None:
                images.append(path)
                lines += [f"![{markdown_cell(path.stem)}]({quote(path.name)})", ""]
    return lines, images


def _bias_section(s: Scored, directory: Path) -> tuple[list[str], list[Path]]:
    scored = [r for r in s.bias if not _text(r.get("skipped"))]
    if not scored:
        return [], []
    m = s.metrics
    means = ", ".join(f"{name} {_fmt(m.get(f'bias/power_mean/{name}'))}" for name in BIAS_AUCS)
    worst = sorted(scored, key=lambda r: min(_num(r.get(name)) for name in BIAS_AUCS))[:SHOWN_IDENTITIES]
    table = [[r["identity"], _fmt(r["n"], 0), *(_fmt(r.get(name)) for name in BIAS_AUCS)] for r in worst]
    skipped = [r for r in s.bias if _text(r.get("skipped"))]
    lines = [
        f"## Bias: {markdown_cell(s.run_label)} on {markdown_cell(s.source)}",
        "",
        f"Final score {_fmt(m.get('bias/final_score'), 4)} = 0.25 x overall AUC "
        f"{_fmt(m.get('bias/overall_auc'))} + 0.75 x mean of the power means (p = -5: {means}). "
        f"The {len(worst)} identities with the lowest AUC of the three:",
        "",
        rows_text(["identity", "n", *BIAS_AUCS], table, "markdown").rstrip(),
        "",
    ]
    if skipped:
        lines += [f"Skipped: {', '.join(markdown_cell(r['identity']) for r in skipped)}.", ""]
    path = write_bias_plot(scored, "", directory / f"{safe_name(s.run_label)}_{safe_name(s.source)}_bias.png")
    if path is None:
        return lines, []
    return lines + [f"![{markdown_cell(path.stem)}]({quote(path.name)})", ""], [path]


def _interval(row: dict[str, Any], key: str) -> str:
    value = _fmt(row.get(key))
    low, high = _fmt(row.get(f"{key}_ci_low"), 2), _fmt(row.get(f"{key}_ci_high"), 2)
    return f"{value} [{low}, {high}]" if value and low else value


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return -math.inf if math.isnan(number) else number


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _text(value: Any) -> str:
    return "" if value is None or _nan(value) else str(value)
