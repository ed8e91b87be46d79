"""Printing and drawing a breakdown: the slice table (flagged slices first), the bias table, the plots."""

from __future__ import annotations

import math
from pathlib import Path

from toxmod.evaluation.bias import BIAS_AUCS
from toxmod.evaluation.breakdown import Breakdown
from toxmod.evaluation.breakdown_plots import write_breakdown_plots as draw
from toxmod.progress import console
from toxmod.tables import rows_table


def _interval(values: dict[str, float], key: str, with_interval: bool = True) -> str:
    value = values[key]
    if math.isnan(value):
        return "-"
    low, high = values.get(f"{key}_ci_low", math.nan), values.get(f"{key}_ci_high", math.nan)
    if math.isnan(low) or not with_interval:
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.2f}-{high:.2f})"


def print_breakdown(found: Breakdown) -> None:
    """Per slice family: every slice x decision (flagged worst ones first), what is too small said."""
    for family in dict.fromkeys(r.family for r in found.slices):
        rows = [r for r in found.slices if r.family == family]
        rows.sort(key=lambda r: (not r.flag, r.decision))
        table = [
            [r.slice, r.decision, r.n, r.positives, r.negatives]
            + [_interval(r.values, "recall"), _interval(r.values, "fpr")]
            + [_interval(r.values, "precision", False), _interval(r.values, "f1", False), r.flag or r.note]
            for r in rows
        ]
        columns = ["slice", "decision", "n", "pos", "neg", "recall", "fpr", "precision", "f1", "flag / note"]
        console.print(rows_table(f"by {family} (95% bootstrap intervals)", columns, table))
    bias = found.bias
    if bias is None:
        return
    means = ", ".join(f"{k} {v:.3f}" for k, v in bias.power_means.items())
    title = (
        f"bias of {bias.decision}: final {bias.final_score:.4f} = 0.25 x overall AUC {bias.overall_auc:.3f}"
        f" + 0.75 x mean of power means (p=-5: {means})"
    )
    table = [
        [r.identity, r.n, r.positives, *(f"{getattr(r, k):.3f}" for k in BIAS_AUCS)] for r in bias.identities
    ]
    console.print(title, soft_wrap=True)
    columns = ["identity", "n", "positives", *BIAS_AUCS]
    console.print(rows_table("bias AUCs per identity (worst subgroup AUC first)", columns, table))
    if bias.skipped:
        skipped = "; ".join(f"{name} ({why})" for name, why in bias.skipped.items())
        console.print(f"skipped identities: {skipped}", soft_wrap=True)


def write_breakdown_plots(found: Breakdown, folder: Path) -> list[Path]:
    decision = found.bias.decision if found.bias else ""
    return draw(found.slice_records(), found.bias_records(), decision, folder)
