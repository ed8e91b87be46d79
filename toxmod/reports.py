"""Rich tables for the terminal: one run's results, and run comparisons."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from toxmod.data.schemes import LabelScheme
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


def results_table(
    title: str, split: str, scheme: LabelScheme, metrics: Mapping[str, float], thresholds: Mapping[str, float]
) -> Table:
    """Per-label threshold, precision/recall/F1/FPR/support and AUCs of one split."""
    table = Table(title=title, title_justify="left")
    table.add_column("label")
    table.add_column("threshold", justify="right")
    for metric in PER_LABEL_METRICS:
        table.add_column(metric, justify="right")
    cumulative = False
    for label in scheme.report_names:
        decision = scheme.decision_for(label)
        cumulative |= decision not in (None, label)
        row = [_fmt(metrics.get(f"{split}/{label}/{m}")) for m in PER_LABEL_METRICS]
        table.add_row(label, _fmt(thresholds.get(decision)) if decision else "-", *row)
    if cumulative:
        table.caption = (
            "level thresholds apply to P(level >= that level); the highest level passed is predicted"
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
    """The rows as ``csv`` (full precision) or a ``markdown`` table, for files, notebooks and pipes."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
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
