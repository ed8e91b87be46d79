"""A run's plots (PNG, matplotlib's Agg backend): what a person reads at a glance on the run's page.

Per decision label on the holdout: the precision-recall curve with the calib-chosen operating point
and the target-FPR line (the precision a recall has at exactly the target FPR: points above it flag
fewer negatives than the budget), and the score histogram of positives vs negatives with the
threshold. For the whole run: a reliability diagram (ECE in the title), the confusion matrix of the
levels for a levels scheme, and a neural run's valid curve and loss per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.evaluation.metrics import calibration_bins, expected_calibration_error

RELIABILITY_BINS = 15


def pyplot() -> Any:  # matplotlib.pyplot, imported with the non-interactive backend
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def operating_point(truth: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Recall, precision and FPR of flagging ``scores >= threshold`` (0 where undefined)."""
    flagged = scores >= threshold
    caught = float((flagged & truth).sum())
    return (
        caught / max(int(truth.sum()), 1),
        caught / max(int(flagged.sum()), 1),
        float((flagged & ~truth).sum()) / max(int((~truth).sum()), 1),
    )


def write_run_plots(
    directory: Path,
    scheme: LabelScheme,
    scores: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray,
    target_fprs: Mapping[str, float],
    curves: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    split: str = "holdout",
) -> list[Path]:
    """Every plot of a run into ``directory``; returns the files written."""
    from sklearn.metrics import precision_recall_curve

    plt = pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    decision_scores = scheme.decision_scores(scores)
    decision_targets = scheme.decision_targets(targets).astype(bool)
    for j, name in enumerate(scheme.decision_names):
        column, truth, cut = decision_scores[:, j], decision_targets[:, j], float(thresholds[j])
        positives, negatives = int(truth.sum()), int((~truth).sum())
        fig, ax = plt.subplots(figsize=(5, 4))
        if positives and negatives:
            precision, recall, _ = precision_recall_curve(truth, column)
            ax.plot(recall, precision, label=f"{split} PR curve")
            op_recall, op_precision, op_fpr = operating_point(truth, column, cut)
            ax.plot(
                [op_recall],
                [op_precision],
                "o",
                color="C3",
                label=f"threshold {cut:.3f} (calib): recall {op_recall:.2f}, FPR {op_fpr:.3f}",
            )
            target = target_fprs.get(name)
            if target is not None:
                grid = np.linspace(1e-3, 1, 200)
                iso = grid * positives / (grid * positives + target * negatives)
                ax.plot(grid, iso, "--", color="grey", label=f"FPR = {target:g}")
        else:
            ax.text(0.5, 0.5, f"no {'positives' if not positives else 'negatives'} in {split}", ha="center")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{name} ({split})")
        ax.legend(loc="lower left", fontsize=7)
        written.append(save_figure(fig, directory / f"pr_{safe_name(name)}.png"))

        fig, ax = plt.subplots(figsize=(5, 4))
        bins = np.linspace(0, 1, 41)
        ax.hist(column[~truth], bins=bins, alpha=0.6, label=f"negatives ({negatives})", density=True)
        ax.hist(column[truth], bins=bins, alpha=0.6, label=f"positives ({positives})", density=True)
        ax.axvline(cut, color="C3", label=f"threshold {cut:.3f}")
        ax.set(xlabel="score", ylabel="density", title=f"{name} scores ({split})")
        ax.legend(fontsize=7)
        written.append(save_figure(fig, directory / f"scores_{safe_name(name)}.png"))

    confidence, outcome = scheme.calibration_pairs(scores, targets)
    written.append(_reliability(plt, directory, confidence, outcome, split))
    confusion = scheme.confusion(targets, scheme.predict(scores, thresholds))
    if confusion is not None:
        written.append(_confusion(plt, directory, *confusion, split))
    if curves:
        written.append(_curves(plt, directory, curves))
    return written


def save_figure(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _reliability(plt: Any, directory: Path, confidence: np.ndarray, outcome: np.ndarray, split: str) -> Path:
    ece = expected_calibration_error(confidence, outcome, RELIABILITY_BINS)
    # the bins the ECE in the title averages over
    bins = calibration_bins(confidence, outcome, RELIABILITY_BINS)
    centres, observed = [b[0] for b in bins], [b[1] for b in bins]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(centres, observed, "o-", label="observed frequency")
    ax.set(
        xlabel="predicted probability",
        ylabel="observed frequency",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"reliability ({split}), ECE {ece:.3f}",
    )
    ax.legend(loc="upper left", fontsize=7)
    return save_figure(fig, directory / "reliability.png")


def _confusion(
    plt: Any, directory: Path, names: list[str], truth: np.ndarray, predicted: np.ndarray, split: str
) -> Path:
    k = len(names)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.0 * k + 2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    ax.set_xticks(range(k), names, rotation=30)
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion ({split}, calib thresholds)")
    return save_figure(fig, directory / "confusion.png")


def _curves(plt: Any, directory: Path, curves: Mapping[str, Sequence[tuple[int, float]]]) -> Path:
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (name, points) in zip(axes[0], curves.items()):
        steps, values = zip(*points) if points else ((), ())
        ax.plot(steps, values, "o-" if len(points) < 30 else "-")
        ax.set(xlabel="step", title=name)
    return save_figure(fig, directory / "training_curves.png")


def write_pr_overlay(
    path: Path, title: str, curves: Mapping[str, tuple[np.ndarray, np.ndarray, tuple[float, float]]]
) -> Path:
    """Several models' precision-recall curves on the same rows: ``name -> (truth, scores, operating
    point (recall, precision))``."""
    from sklearn.metrics import precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (name, (truth, scores, (op_recall, op_precision))) in enumerate(curves.items()):
        precision, recall, _ = precision_recall_curve(truth, scores)
        ax.plot(recall, precision, color=f"C{i % 10}", label=name)
        ax.plot([op_recall], [op_precision], "o", color=f"C{i % 10}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower left", fontsize=7)
    return save_figure(fig, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def write_pareto(
    path: Path, title: str, x_label: str, y_label: str, points: Mapping[str, tuple[float, float, float]]
) -> Path:
    """Quality (y) against latency (x, log scale), marker area by size; the Pareto front joined."""
    plt = pyplot()
    names = list(points)
    xy = [(points[n][0], points[n][1]) for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sizes = np.asarray([points[n][2] for n in names], dtype=float)
    area = 30 + 270 * sizes / max(sizes.max(), 1e-9) if len(sizes) else sizes
    ax.scatter([p[0] for p in xy], [p[1] for p in xy], s=area, alpha=0.6)
    right = max((p[0] for p in xy), default=0.0)
    for name, (x, y) in zip(names, xy):
        at_right = x >= right  # the rightmost labels go to the left of their point: never cut off
        ax.annotate(
            f"{name} ({points[name][2]:.1f} MB)",
            (x, y),
            fontsize=7,
            xytext=(-4 if at_right else 4, 4),
            textcoords="offset points",
            ha="right" if at_right else "left",
        )
    front = pareto_front(xy)
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "--", color="C3", label="Pareto front")
    if all(p[0] > 0 for p in xy):
        ax.set_xscale("log")
    ax.set(xlabel=x_label, ylabel=y_label, title=title)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
