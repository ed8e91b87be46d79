"""Unintended-bias metrics for identity columns (Borkan et al. 2019, the Jigsaw Unintended Bias metric).

For each identity (rows whose identity value is >= 0.5) and one decision's scores:

- subgroup AUC: AUC on the identity's rows only (does the model separate toxic from not within it?);
- BPSN AUC (background positive, subgroup negative): the identity's negatives against everyone
  else's positives -- low when the identity's harmless texts score high (false flags);
- BNSP AUC (background negative, subgroup positive): the identity's positives against everyone
  else's negatives -- low when the identity's toxic texts score low (misses).

Each is summarised over identities by a power mean with p = -5 (the worst identities weigh most),
and the final score is ``0.25 * overall AUC + 0.75 * mean of the three power means``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from toxmod.errors import DataError

BIAS_AUCS = ("subgroup_auc", "bpsn_auc", "bnsp_auc")
POWER = -5.0
OVERALL_WEIGHT = 0.25
MEMBERSHIP_CUT = 0.5  # an identity value >= 0.5 makes a row a member (fractions of annotators too)


@dataclass(frozen=True)
class IdentityAucs:
    identity: str
    n: int
    positives: int
    subgroup_auc: float
    bpsn_auc: float
    bnsp_auc: float


@dataclass(frozen=True)
class BiasReport:
    """Per-identity AUCs (worst subgroup AUC first), their power means, the final score, and the
    identities left out with the reason."""

    decision: str
    overall_auc: float
    identities: list[IdentityAucs]
    power_means: dict[str, float]
    final_score: float
    skipped: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat ``bias/...`` metric names, as MLflow records them."""
        found = {"bias/overall_auc": self.overall_auc, "bias/final_score": self.final_score}
        found |= {f"bias/power_mean/{name}": value for name, value in self.power_means.items()}
        for row in self.identities:
            found |= {f"bias/{row.identity}/{name}": float(getattr(row, name)) for name in BIAS_AUCS}
        return found


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC with ties counted half (the Mann-Whitney statistic); NaN without both classes."""
    targets = np.asarray(targets, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(targets.sum()), int((~targets).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = _average_ranks(scores)
    return float((ranks[targets].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def power_mean(values: list[float] | np.ndarray, p: float = POWER) -> float:
    """``(mean(v ** p)) ** (1 / p)`` over the defined values (NaN when none); 0 when any is 0."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(array) == 0:
        return math.nan
    if (array <= 0).any():
        return 0.0
    return float(np.mean(array**p) ** (1.0 / p))


def identity_aucs(identity: str, member: np.ndarray, targets: np.ndarray, scores: np.ndarray) -> IdentityAucs:
    """The three AUCs of one identity (``member``: boolean rows of the identity)."""
    member, targets = np.asarray(member, dtype=bool), np.asarray(targets, dtype=bool)
    bpsn = (member & ~targets) | (~member & targets)
    bnsp = (member & targets) | (~member & ~targets)
    return IdentityAucs(
        identity,
        int(member.sum()),
        int((member & targets).sum()),
        roc_auc(targets[member], scores[member]),
        roc_auc(targets[bpsn], scores[bpsn]),
        roc_auc(targets[bnsp], scores[bnsp]),
    )


def membership(column: str, values: np.ndarray, where: str) -> np.ndarray:
    """Rows whose identity value is >= 0.5; a column that is not numbers in [0, 1] is one line."""
    given = pd.Series(values, dtype=object)
    numbers = pd.to_numeric(given, errors="coerce").to_numpy(dtype=np.float64)
    text = np.isnan(numbers) & given.notna().to_numpy() & (given.astype(str).str.strip() != "").to_numpy()
    if text.any():
        shown = str(given[text].iloc[0])[:40]
        raise DataError(
            f"{where}: identity column {column!r} holds {shown!r}; identity columns are 0/1 "
            "or fractions in [0, 1] (empty: not annotated)"
        )
    known = numbers[~np.isnan(numbers)]
    if len(known) and (known.min() < 0 or known.max() > 1):
        raise DataError(
            f"{where}: identity column {column!r} holds values outside [0, 1] "
            f"({known.min():g} .. {known.max():g}); identity columns are 0/1 or fractions"
        )
    return np.nan_to_num(numbers, nan=0.0) >= MEMBERSHIP_CUT


def bias_report(
    decision: str,
    identities: Mapping[str, np.ndarray],
    targets: np.ndarray,
    scores: np.ndarray,
    min_examples: int,
) -> BiasReport:
    """Bias AUCs of every identity with at least ``min_examples`` member rows holding both classes
    (``identities``: name -> boolean membership); the others are listed in ``skipped`` with why."""
    targets, scores = np.asarray(targets, dtype=bool), np.asarray(scores, dtype=np.float64)
    rows, skipped = [], {}
    for name, member in identities.items():
        count = int(np.asarray(member).sum())
        if count < min_examples:
            skipped[name] = f"{count} rows < {min_examples}"
            continue
        row = identity_aucs(name, member, targets, scores)
        if math.isnan(row.subgroup_auc):
            only = "toxic" if row.positives == count else "non-toxic"
            skipped[name] = f"all {count} rows {only}: no subgroup AUC"
            continue
        rows.append(row)
    rows.sort(key=lambda r: r.subgroup_auc)
    overall = roc_auc(targets, scores)
    means = {name: power_mean([getattr(r, name) for r in rows]) for name in BIAS_AUCS}
    final = OVERALL_WEIGHT * overall + (1 - OVERALL_WEIGHT) * float(np.mean(list(means.values())))
    return BiasReport(decision, overall, rows, means, final if rows else math.nan, skipped)
