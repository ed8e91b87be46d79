"""What a split must hold before anything is trained on it, and what only deserves a warning.

Errors (all found ones in one message): an empty train, threshold or holdout split; a training task
missing one of its classes (a label without positive or without negative train rows, a level no
train row has) -- no model can learn it; a decision without negatives in the threshold split -- no
threshold can be chosen at an FPR. Warnings: a decision without positives (or negatives) in the
threshold split or the holdout -- its recall (or FPR) is undefined and reported as null; a target
FPR finer than the threshold split can resolve; positive rates that differ more than 2x between the
threshold split and the holdout, beyond sampling noise -- thresholds may not transfer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from toxmod.data.datasets import LabeledDataset
from toxmod.errors import SplitError
from toxmod.splits.manifest import Split

SHOWN = 6  # problems listed in one message; the rest are counted
SHIFT_Z = 2.58  # a calib/holdout positive-rate gap this many standard errors wide is a shift


def check_split(
    dataset: LabeledDataset, split: Split, fit_split: str, target_fpr: Mapping[str, float]
) -> list[str]:
    """Refuse (one SplitError listing every problem) or return the warnings; ``target_fpr`` per decision."""
    scheme = dataset.scheme
    errors: list[str] = []
    warnings: list[str] = []
    parts = {name: split.part(dataset, name) for name in ("train", fit_split, "holdout")}
    sizes = "/".join(str(len(rows)) for rows in split.rows.values())
    prefix = f"{dataset.name} split ({'/'.join(split.rows)} = {sizes} rows): "
    for name, part in parts.items():
        if len(part) == 0:
            errors.append(f"the {name} split is empty")
    if errors:
        raise SplitError(_one_line(prefix, errors))
    for task in scheme.training_tasks(parts["train"].targets):
        counts = np.bincount(np.asarray(task.targets, dtype=int), minlength=task.n_classes)
        for missing in np.flatnonzero(counts == 0):
            what = (
                f"{('negative', 'positive')[missing]} rows of {task.name}"
                if task.score_columns == 1
                else f"rows of level {scheme.output_names[missing]}"
            )
            errors.append(f"train ({len(task.targets)} rows) has no {what}: a model cannot learn it")
    fit = scheme.decision_targets(parts[fit_split].targets)
    holdout = scheme.decision_targets(parts["holdout"].targets)
    for j, decision in enumerate(scheme.decision_names):
        negatives, positives = int((~fit[:, j]).sum()), int(fit[:, j].sum())
        if negatives == 0:
            errors.append(f"{fit_split} has no negatives of {decision}: no threshold can be chosen at an FPR")
            continue
        target = target_fpr.get(decision)
        coarse = coarse_fit_split(decision, negatives, len(fit), target)
        if coarse:
            warnings.append(f"{fit_split} has {coarse}")
        if positives == 0:
            warnings.append(
                f"{fit_split} has no positives of {decision}: its recall there is undefined (null)"
            )
        holdout_positives, holdout_negatives = int(holdout[:, j].sum()), int((~holdout[:, j]).sum())
        if holdout_positives == 0:
            warnings.append(f"holdout has no positives of {decision}: its recall is undefined (null)")
        if holdout_negatives == 0:
            warnings.append(f"holdout has no negatives of {decision}: its FPR is undefined (null)")
        fit_rate, holdout_rate = positives / len(fit), holdout_positives / len(holdout)
        if _shifted(positives, len(fit), holdout_positives, len(holdout)):
            warnings.append(
                f"thresholds may not transfer: {decision} is {fit_rate:.1%} of {fit_split} "
                f"but {holdout_rate:.1%} of the holdout"
            )
    if errors:
        raise SplitError(_one_line(prefix, errors))
    return warnings


def coarse_decisions(
    dataset: LabeledDataset, split: Split, fit_split: str, target_fpr: Mapping[str, float]
) -> dict[str, str]:
    """``{decision: "10 negatives, needs 50"}`` for the decisions whose FPR target ``fit_split``
    cannot resolve (the run's ``calib_too_small`` tag; ``check_split`` warns with the remedy)."""
    fit = dataset.scheme.decision_targets(split.part(dataset, fit_split).targets)
    found = {}
    for j, decision in enumerate(dataset.scheme.decision_names):
        negatives = int((~fit[:, j]).sum())
        needed = negatives_needed(negatives, target_fpr.get(decision))
        if negatives and needed:
            found[decision] = f"{negatives} negatives, needs {needed}"
    return found


def negatives_needed(negatives: int, target: float | None) -> int | None:
    """The negatives an FPR target needs when ``negatives`` cannot resolve it (its steps of
    1 / negatives are coarser than the target), else None."""
    if target is None or not negatives or not 0 < target < 1.0 / negatives:
        return None
    return int(np.ceil(1.0 / target))


def coarse_fit_split(decision: str, negatives: int, rows: int, target: float | None) -> str | None:
    """When ``negatives`` negatives of ``decision`` (of ``rows`` rows) cannot resolve the FPR target:
    what it moves in steps of, and the remedy in numbers (the negatives and rows it would take at this
    negative rate, or the smallest target these rows resolve). None when the target is resolvable."""
    needed = negatives_needed(negatives, target)
    if needed is None:
        return None
    rows_needed = int(np.ceil(needed * rows / negatives))
    return (
        f"{negatives} negatives of {decision} in {rows} rows: its FPR moves in steps of {1 / negatives:.3g}, "
        f"coarser than threshold.target_fpr={target}; that needs >= {needed} negatives, about "
        f"{rows_needed} rows at this negative rate (more data, or a larger calib share), or a target "
        f">= {1 / negatives:.3g}, the smallest these rows resolve"
    )


def _shifted(positives_a: int, rows_a: int, positives_b: int, rows_b: int) -> bool:
    """Positive rates more than 2x apart, and too far apart for sampling noise (two-proportion z-test,
    |z| > 2.58, p < 0.01): a rare label's 3 vs 12 positives is not a shift worth a warning."""
    rate_a, rate_b = positives_a / rows_a, positives_b / rows_b
    if not rate_a or not rate_b or max(rate_a, rate_b) <= 2 * min(rate_a, rate_b):
        return False
    pooled = (positives_a + positives_b) / (rows_a + rows_b)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / rows_a + 1 / rows_b))
    return bool(abs(rate_a - rate_b) > SHIFT_Z * spread)


def _one_line(prefix: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"{prefix}{shown}{more}"
