"""A run's operating point against its own budget: is its FPR at the calibrated threshold within the
target it was thresholded for, on valid (what selection uses) and on the holdout (what is reported)?

Every run records, per thresholded decision, ``threshold/<decision>/target_fpr`` (its budget; absent
for modes without one, e.g. ``threshold=max_f1``), ``<split>/<decision>/fpr`` at the threshold it
chose on calib and ``<split>/<decision>/negatives``. A split resolves an FPR only to one negative's
share (1 / negatives): a run is within budget when its FPR is at most ``slack`` negatives over the
target's share (one, by default: 5 false positives among 224 negatives is within a 2% budget, 11
among 330 is not). ``select`` crowns only runs within budget on valid; ``compare`` and ``report`` mark
runs over it, on valid or on the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from toxmod.runs.store import StoredRun

TARGET_SUFFIX = "/target_fpr"
SMALL_CALIB_TAG = "calib_too_small"  # set by the train stage when calib cannot resolve the target FPR


@dataclass(frozen=True)
class Overrun:
    """One decision whose FPR on ``split`` is above its target."""

    decision: str
    split: str
    fpr: float
    target: float

    def __str__(self) -> str:
        return f"{self.decision} {self.split} FPR {self.fpr:.3f} > {self.target:.3f}"


def targets(run: StoredRun) -> dict[str, float]:
    """``{decision: target FPR}`` of the run's thresholded decisions that have a budget."""
    return metric_targets(run.metrics)


def metric_targets(metrics: Mapping[str, float]) -> dict[str, float]:
    """``{decision: target FPR}`` from a run's metrics (``threshold/<decision>/target_fpr``)."""
    found = {}
    for name, value in metrics.items():
        if name.startswith("threshold/") and name.endswith(TARGET_SUFFIX):
            found[name.removeprefix("threshold/").removesuffix(TARGET_SUFFIX)] = float(value)
    return found


DEFAULT_SLACK = 1.0  # negatives: the FPR's resolution on a finite split


def overruns(run: StoredRun, split: str = "valid", slack: float = DEFAULT_SLACK) -> list[Overrun]:
    """The decisions whose FPR on ``split`` at the run's thresholds exceeds their target by more than
    ``slack`` negatives' share of that split."""
    excess = excesses(run.metrics, split, slack)
    return [
        Overrun(d, split, float(run.metrics[f"{split}/{d}/fpr"]), t)
        for d, (t, e) in excess.items()
        if e > 1e-12
    ]


def excesses(
    metrics: Mapping[str, float], split: str = "valid", slack: float = DEFAULT_SLACK
) -> dict[str, tuple[float, float]]:
    """``{decision: (target, FPR minus what the budget allows)}``: above 0 is over its budget (a
    search's constraint: ``max`` of these <= 0 is a run select can crown)."""
    found = {}
    for decision, target in sorted(metric_targets(metrics).items()):
        fpr = metrics.get(f"{split}/{decision}/fpr")
        negatives = metrics.get(f"{split}/{decision}/negatives")
        allowance = slack / negatives if negatives else 0.0
        if fpr is not None and fpr == fpr:
            found[decision] = (target, float(fpr) - target - allowance)
    return found


def within_budget(run: StoredRun, split: str = "valid", slack: float = DEFAULT_SLACK) -> bool:
    return not overruns(run, split, slack)


def budget_note(
    run: StoredRun, splits: tuple[str, ...] = ("valid", "holdout"), slack: float = DEFAULT_SLACK
) -> str:
    """``ok``, ``no budget``, or ``OVER: scam valid FPR 0.033 > 0.020; ...`` (and a small calib)."""
    if not targets(run):
        note = "no budget"
    else:
        over = [str(o) for split in splits for o in overruns(run, split, slack)]
        note = "OVER: " + "; ".join(over) if over else "ok"
    if run.tags.get(SMALL_CALIB_TAG):
        note += f" (calib too small: {run.tags[SMALL_CALIB_TAG]})"
    return note
