"""Rich tables for the terminal: one run's results, and run comparisons."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from toxmod.data.schemes import LabelScheme
from toxmod.display import csv_cell, markdown_cell, markdown_code
from toxmod.evaluation.metrics import PER_LABEL_METRICS


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value.is_integer() and abs(value) >= 1:
            return f"{int(value)}"
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


CUT_METRICS = ("precision", "recall", "fpr")


def results_table(
    title: str, split: str, scheme: LabelScheme, metrics: Mapping[str, float], thresholds: Mapping[str, float]
) -> Table:
    """Per-label threshold, precision/recall/F1/FPR/support and AUCs of one split."""
    table = Table(title=title, title_justify="left")
    table.add_column("label")
    table.add_column("threshold", justify="right")
    for metric in PER_LABEL_METRICS:
        table.add_column(metric, justify="right")
    cuts = [d for d in scheme.decision_names if d not in scheme.report_names]  # level cuts
    for label in scheme.report_names:
        decision = scheme.decision_for(label)
        row = [_fmt(metrics.get(f"{split}/{label}/{m}")) for m in PER_LABEL_METRICS]
        shown = decision == label  # a label thresholded on its own score; a level is not
        table.add_row(label, _fmt(thresholds.get(label)) if shown else "-", *row)
    for decision in cuts:  # each cut with its own threshold and its own FPR, recall and precision
        row = [
            _fmt(metrics.get(f"{split}/{decision}/{m}")) if m in CUT_METRICS else ""
            for m in PER_LABEL_METRICS
        ]
        table.add_row(decision, _fmt(thresholds.get(decision)), *row)
    if cuts:
        table.caption = (
            "levels: one level vs the rest; at_least_<level>: the cut on P(level >= that level), with its "
            "own threshold and FPR; the highest level whose cut is passed is predicted"
        )
    return table


def headline_table(split: str, metrics: Mapping[str, float], names: Sequence[str]) -> Table:
    """Headline metrics with their bootstrap intervals where present."""
    table = Table(title=f"{split} headline", title_justify="left")
    for column in ("metric", "value", "95% CI"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for name in names:
        key = f"{split}/{name}"
        if key not in metrics:
            continue
        low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
        interval = f"[{_fmt(low)}, {_fmt(high)}]" if low is not None else ""
        table.add_row(name, _fmt(metrics[key]), interval)
    return table


def rows_text(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """The rows as ``csv`` (full precision) or a ``markdown`` table, for files, notebooks and pipes.
    Text cells are made inert for their reader (``display``): no formula runs in a spreadsheet, no
    ``|`` shifts a markdown column, no HTML renders."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([csv_cell(c) for c in columns])
        writer.writerows([["" if v is None else csv_cell(v) for v in row] for row in rows])
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(markdown_cell(_fmt(v)) for v in row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown table format {fmt!r}")


def rows_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A plain table of already-computed rows (used by compare and the benchmarks)."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    return table


def run_card(
    model: str,
    dataset: str,
    scheme: LabelScheme,
    thresholds: Any,
    targets: Mapping[str, float],
    metrics: Mapping[str, float],
    split_sha256: str,
    command: str,
) -> str:
    """A short markdown card of a run (the MLflow run description): its operating point, the holdout
    numbers at it, the split and the command that made it."""
    budget = (
        "no FPR budget"
        if not targets
        else "FPR target " + ", ".join(f"{d} {t:g}" for d, t in targets.items())
    )
    method = f"{markdown_code(thresholds.method)} on {markdown_cell(thresholds.fit_split)}"
    lines = [
        f"**{markdown_cell(model)}** on **{markdown_cell(dataset)}** · thresholds by {method} ({budget})",
        "",
        "| decision | threshold | holdout recall | holdout FPR | holdout precision |",
        "|---|---|---|---|---|",
    ]
    for name, value in thresholds.as_dict().items():
        cells = [_fmt(metrics.get(f"holdout/{name}/{m}")) for m in ("recall", "fpr", "precision")]
        lines.append(f"| {markdown_cell(name)} | {value:.4f} | " + " | ".join(cells) + " |")
    headline, size_mb = scheme.headline_name, (metrics.get("model_size_bytes") or 0) / 1e6
    lines += [
        "",
        f"holdout macro F1 {_fmt(metrics.get('holdout/macro_f1'))} · {headline} "
        f"{_fmt(metrics.get(f'holdout/{headline}'))} · size {size_mb:.2f} MB"
        f" · train {metrics.get('train_seconds', 0.0):.1f} s",
        "",
        f"split {markdown_code(split_sha256)}",
        "",
        markdown_code(command),
    ]
    return "\n".join(lines)
