"""Plots of a breakdown (PNG): per-slice FPR and recall with their intervals, per-identity bias AUCs.

Read from the table records (``slices.csv`` / ``bias.csv`` rows), so the report draws the same plots
from a recorded run as ``toxmod.evaluate`` draws from what it just computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.evaluation.bias import BIAS_AUCS
from toxmod.evaluation.plots import pyplot, safe_name, save_figure


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def write_slice_plot(
    records: Sequence[Mapping[str, Any]], family: str, decision: str, path: Path
) -> Path | None:
    """FPR and recall per slice of one family and decision, 95% intervals as error bars (slices that
    do not resolve a number are left out of its panel)."""
    mine = [r for r in records if r["family"] == family and r["decision"] == decision]
    if not mine:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, max(2.5, 0.35 * len(mine) + 1.2)), sharey=True)
    labels = [f"{r['slice']} (n={int(_number(r['n']))})" for r in mine]
    y = np.arange(len(mine))
    for ax, key in zip(axes, ("fpr", "recall")):
        values = np.array([_number(r.get(key)) for r in mine])
        low = np.array([_number(r.get(f"{key}_ci_low")) for r in mine])
        high = np.array([_number(r.get(f"{key}_ci_high")) for r in mine])
        known = ~np.isnan(values)
        errors = np.vstack([np.nan_to_num(values - low), np.nan_to_num(high - values)])[:, known]
        ax.errorbar(values[known], y[known], xerr=errors, fmt="o", capsize=3)
        ax.set_xlabel(f"{decision} {key.upper() if key == 'fpr' else key}")
        ax.grid(alpha=0.3)
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    fig.suptitle(f"{family}: {decision} by slice (95% bootstrap intervals)")
    return save_figure(fig, path)


def write_bias_plot(records: Sequence[Mapping[str, Any]], decision: str, path: Path) -> Path | None:
    """Subgroup, BPSN and BNSP AUC per identity (worst subgroup AUC at the top)."""
    rows = [r for r in records if not math.isnan(_number(r.get("subgroup_auc")))]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: _number(r["subgroup_auc"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.25 * len(rows) + 1.2)))
    y = np.arange(len(rows))
    for offset, name in zip((-0.25, 0.0, 0.25), BIAS_AUCS):
        ax.barh(y + offset, [_number(r[name]) for r in rows], height=0.25, label=name)
    ax.set_yticks(y, [str(r["identity"]) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.axvline(0.5, color="grey", linewidth=0.8)
    ax.set_xlabel(f"AUC of {decision}")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("bias AUCs per identity (worst subgroup AUC first)")
    return save_figure(fig, path)


def slice_plot_name(family: str, decision: str) -> str:
    return f"slices_{safe_name(family)}_{safe_name(decision)}.png"


def write_breakdown_plots(
    slices: Sequence[Mapping[str, Any]], bias: Sequence[Mapping[str, Any]], bias_decision: str, folder: Path
) -> list[Path]:
    """Every slice family x decision plot and the bias plot into ``folder/plots``."""
    folder = folder / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for family, decision in dict.fromkeys((str(r["family"]), str(r["decision"])) for r in slices):
        path = write_slice_plot(slices, family, decision, folder / slice_plot_name(family, decision))
        written += [path] if path else []
    if bias:
        path = write_bias_plot(bias, bias_decision, folder / "bias_aucs.png")
        written += [path] if path else []
    return written
