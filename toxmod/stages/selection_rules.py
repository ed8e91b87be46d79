"""Why a candidate is not crowned by ``select``: each rule returns, per run id, the reason in words.

- ``budget``: a thresholded decision's valid FPR is over its own target (``runs/budget.py``);
- ``f1_floor``: another thresholded decision collapsed -- its valid F1 is below ``f1_floor`` x the best
  valid F1 any candidate reaches on it. The ranking metric is one decision's recall; without the floor
  a run that keeps the primary decision and gives up the others (a student whose topic label fell to
  recall 0.15) could be crowned and serve every decision;
- ``same model``: an export and the run it was exported from are one model: only the better ranked of
  them competes;
- ``suite``: below the suite gate (``stages/suite.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from toxmod.runs.budget import overruns
from toxmod.runs.store import StoredRun

NEGATIVES_SUFFIX = "/negatives"  # every thresholded decision records <split>/<decision>/negatives


def decisions(run: StoredRun, split: str = "valid") -> list[str]:
    """The run's thresholded decisions (those with a recorded ``<split>/<decision>/negatives``)."""
    prefix = f"{split}/"
    return sorted(
        k.removeprefix(prefix).removesuffix(NEGATIVES_SUFFIX)
        for k in run.metrics
        if k.startswith(prefix) and k.endswith(NEGATIVES_SUFFIX)
    )


def decision_f1(run: StoredRun, decision: str, split: str = "valid") -> float:
    """A decision's F1 at its threshold: recorded, or from its precision and recall (levels)."""
    metrics = run.metrics
    if f"{split}/{decision}/f1" in metrics:
        return float(metrics[f"{split}/{decision}/f1"])
    precision = metrics.get(f"{split}/{decision}/precision", math.nan)
    recall = metrics.get(f"{split}/{decision}/recall", math.nan)
    if math.isnan(precision) or math.isnan(recall):
        return math.nan
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def budget_reasons(runs: Sequence[StoredRun], slack: float) -> dict[str, str]:
    return {
        r.run_id: "over budget on valid: " + "; ".join(str(o) for o in found)
        for r in runs
        if (found := overruns(r, "valid", slack))
    }


def f1_floor_reasons(runs: Sequence[StoredRun], primary: str, floor: float) -> dict[str, str]:
    """Runs where a decision other than ``primary`` has valid F1 < ``floor`` x the best of all runs."""
    if floor <= 0:
        return {}
    names = sorted({d for r in runs for d in decisions(r)} - {primary})
    best = {
        d: max((v for r in runs if not math.isnan(v := decision_f1(r, d))), default=math.nan) for d in names
    }
    found = {}
    for run in runs:
        low = [
            f"{d} valid F1 {value:.3f} < {floor:g} x {best[d]:.3f}"
            for d in names
            if not math.isnan(value := decision_f1(run, d)) and value < floor * best[d] - 1e-12
        ]
        if low:
            found[run.run_id] = "F1 floor: " + "; ".join(low)
    return found


def same_model_reasons(ranked: Sequence[StoredRun], excluded: set[str]) -> dict[str, str]:
    """An export and its source compete once: the later ranked of the two (among runs not already
    excluded) is marked."""
    position = {r.run_id: i for i, r in enumerate(ranked)}
    found = {}
    for run in ranked:
        source = run.tags.get("source_run_id")
        if not source or source not in position:
            continue
        pair = sorted([run.run_id, source], key=lambda i: (i in excluded, position[i]))
        found[pair[1]] = f"same model as {pair[0][:8]} (an export and its source compete once)"
    return found


def holdout_note(run: StoredRun, slack: float) -> str:
    """The holdout against the budget, for the record (never a reason: the holdout does not choose)."""
    found = overruns(run, "holdout", slack)
    return "ok" if not found else "over: " + "; ".join(str(o) for o in found)
