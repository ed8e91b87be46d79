"""Error rates by slice: per value of a data column (or per bucket of a numeric one), each thresholded
decision's n, recall, FPR, precision and F1 at the run's thresholds, with bootstrap intervals.

A slice too small to resolve a number says so instead of printing noise: recall, precision and F1
need ``min_positives`` positives; an FPR needs enough negatives to resolve the decision's FPR budget
(``ceil(1 / target FPR)``; ``min_negatives`` without a budget). The worst slices by FPR and by recall
(among those that resolve it) are flagged.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toxmod.errors import ConfigError, DataError

TEXT_LENGTH = "text_length"  # a derived column (characters of the text) when the data has none of that name
MISSING = "(missing)"
RATES = ("recall", "fpr", "precision", "f1")
_KEY_UNSAFE = re.compile(r"[^\w\-. :/]")


@dataclass(frozen=True)
class SliceSettings:
    """``evaluation.*``: which columns slice the rows and how small a slice may be before it is noise."""

    columns: tuple[str, ...] = ()
    edges: Mapping[str, Sequence[float]] = field(default_factory=dict)
    min_positives: int = 10
    min_negatives: int = 20
    max_slices: int = 50
    worst: int = 1
    bootstrap: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class SliceRow:
    family: str
    slice: str
    decision: str
    n: int
    positives: int
    negatives: int
    values: dict[str, float]  # recall, fpr, precision, f1 and their _ci_low/_ci_high; NaN: not resolved
    note: str = ""
    flag: str = ""


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``[64, 128]`` -> ``['<64', '64-128', '>=128']`` (a value equal to an edge goes up)."""
    shown = [f"{e:g}" for e in edges]
    middle = [f"{a}-{b}" for a, b in zip(shown, shown[1:])]
    return [f"<{shown[0]}", *middle, f">={shown[-1]}"]


def slice_keys(
    column: str,
    values: Sequence[Any],
    edges: Sequence[float] | None,
    max_slices: int,
    where: str,
    require_all: bool = True,
) -> np.ndarray:
    """Each row's slice name: its bucket when ``edges`` are declared, else its value as text.
    ``require_all``: a declared bucket no row falls in is an error (the rows are all the data)."""
    if edges is not None:
        edges = [float(e) for e in edges]
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"evaluation.slice_edges.{column}={list(edges)}: expected increasing numbers")
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(numbers) & (pd.Series(values).astype(str).str.strip() != "").to_numpy()
        if bad.any():
            shown = str(np.asarray(values, dtype=object)[bad][0])[:40]
            raise DataError(f"{where}: slice column {column!r} holds {shown!r}, not a number to bucket")
        labels = np.array(bucket_labels(edges) + [MISSING], dtype=object)
        index = np.where(np.isnan(numbers), len(edges) + 1, np.searchsorted(edges, numbers, side="right"))
        keys = labels[index]
        empty = [label for label in labels[:-1] if not (keys == label).any()]
        if empty and require_all:
            raise ConfigError(
                f"evaluation.slice_edges.{column}={list(edges)}: slice {empty[0]} of {column!r} is empty "
                "in this data; choose edges inside its range"
            )
        return keys
    keys = np.array([MISSING if _missing(v) else str(v) for v in values], dtype=object)
    distinct = len(set(keys.tolist()))
    if distinct > max_slices:
        raise ConfigError(
            f"evaluation.slices: column {column!r} has {distinct} distinct values (> evaluation.max_slices="
            f"{max_slices}); bucket a numeric column with evaluation.slice_edges.{column}=[...]"
        )
    return keys


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def slice_table(
    family: str,
    keys: np.ndarray,
    decisions: Sequence[str],
    targets: np.ndarray,
    predictions: np.ndarray,
    fpr_targets: Mapping[str, float],
    settings: SliceSettings,
) -> list[SliceRow]:
    """Every slice x decision of one family (``targets``/``predictions``: boolean (n, decisions))."""
    rows = []
    targets, predictions = np.asarray(targets, dtype=bool), np.asarray(predictions, dtype=bool)
    for name in sorted(set(keys.tolist()), key=_natural):
        inside = keys == name
        for j, decision in enumerate(decisions):
            rows.append(
                _slice_row(
                    family, name, decision, targets[inside, j], predictions[inside, j], fpr_targets, settings
                )
            )
    return _flag_worst(rows, settings.worst)


def _natural(name: str) -> tuple[float, str]:
    """Buckets in numeric order, categories by name."""
    match = re.match(r"^(<|>=)?(-?\d+(?:\.\d+)?)", name)
    if not match:
        return (math.inf, name)
    value = float(match[2])
    return (value - 0.5 if match[1] == "<" else value, name)


def needed_negatives(target_fpr: float | None, settings: SliceSettings) -> int:
    """Negatives a slice needs for its FPR to resolve the budget (one negative = 1/n of FPR)."""
    if target_fpr and target_fpr > 0:
        return max(settings.min_negatives, math.ceil(1.0 / target_fpr - 1e-9))
    return settings.min_negatives


def _slice_row(
    family: str,
    name: str,
    decision: str,
    truth: np.ndarray,
    flagged: np.ndarray,
    fpr_targets: Mapping[str, float],
    settings: SliceSettings,
) -> SliceRow:
    n, positives = len(truth), int(truth.sum())
    negatives = n - positives
    values = _rates_with_intervals(truth, flagged, settings.bootstrap, settings.seed)
    notes = []
    if positives < settings.min_positives:
        notes.append(f"{positives} positives < {settings.min_positives}: no recall/precision/F1")
        for key in ("recall", "precision", "f1"):
            _blank(values, key)
    need = needed_negatives(fpr_targets.get(decision), settings)
    if negatives < need:
        budget = fpr_targets.get(decision)
        why = f"FPR budget {budget:g}" if budget else "evaluation.min_slice_negatives"
        notes.append(f"{negatives} negatives < {need} ({why}): no FPR")
        _blank(values, "fpr")
    return SliceRow(family, name, decision, n, positives, negatives, values, "; ".join(notes))


def _blank(values: dict[str, float], key: str) -> None:
    for suffix in ("", "_ci_low", "_ci_high"):
        values[f"{key}{suffix}"] = math.nan


def _rates_with_intervals(
    truth: np.ndarray, flagged: np.ndarray, resamples: int, seed: int
) -> dict[str, float]:
    t, p = truth.astype(float), flagged.astype(float)
    cells = np.stack([t * p, (1 - t) * p, t * (1 - p), (1 - t) * (1 - p)], axis=1)  # tp fp fn tn
    point = _rates(cells.sum(axis=0)[None, :])
    values = {key: float(point[key][0]) for key in RATES}
    if resamples and len(truth):
        n = len(truth)
        weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
        sampled = _rates(weights @ cells)
        for key in RATES:
            samples = sampled[key]
            low, high = (math.nan, math.nan)
            if not np.isnan(samples).all():
                low, high = (float(x) for x in np.nanpercentile(samples, [2.5, 97.5]))
            values[f"{key}_ci_low"], values[f"{key}_ci_high"] = low, high
    return values


def _rates(counts: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn, tn = (counts[:, i] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "fpr": np.where(fp + tn > 0, fp / (fp + tn), np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }


def _flag_worst(rows: list[SliceRow], worst: int) -> list[SliceRow]:
    """Flag, per decision, the ``worst`` highest-FPR and lowest-recall slices that resolve them (a
    family with one slice has nothing to compare)."""
    flags: dict[int, list[str]] = {}
    for decision in dict.fromkeys(r.decision for r in rows):
        mine = [(i, r) for i, r in enumerate(rows) if r.decision == decision]
        if len(mine) < 2:
            continue
        for key, label, reverse in (("fpr", "worst FPR", True), ("recall", "worst recall", False)):
            known = [(i, r) for i, r in mine if not math.isnan(r.values[key])]
            known.sort(key=lambda pair: pair[1].values[key], reverse=reverse)
            for i, _ in known[:worst]:
                flags.setdefault(i, []).append(label)
    return [dataclasses.replace(r, flag=", ".join(flags.get(i, []))) for i, r in enumerate(rows)]


def metric_key(*parts: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_ - . : /`` and spaces) from slice parts."""
    cleaned = [
        _KEY_UNSAFE.sub("_", p.replace("<", "lt").replace(">=", "ge").replace("/", "_")) for p in parts
    ]
    return "/".join(cleaned)


def slice_metrics(rows: Sequence[SliceRow]) -> dict[str, float]:
    """``slice/<family>/<slice>/<decision>/<rate>`` (+ n) of every resolved number, and per family and
    decision the worst resolved FPR and recall (``slices/<family>/<decision>/worst_fpr``)."""
    found: dict[str, float] = {}
    for r in rows:
        found[metric_key("slice", r.family, r.slice, r.decision, "n")] = float(r.n)
        for key in RATES:
            if not math.isnan(r.values[key]):
                found[metric_key("slice", r.family, r.slice, r.decision, key)] = r.values[key]
    for family, decision in dict.fromkeys((r.family, r.decision) for r in rows):
        mine = [r for r in rows if r.family == family and r.decision == decision]
        fprs = [r.values["fpr"] for r in mine if not math.isnan(r.values["fpr"])]
        recalls = [r.values["recall"] for r in mine if not math.isnan(r.values["recall"])]
        if fprs:
            found[metric_key("slices", family, decision, "worst_fpr")] = max(fprs)
        if recalls:
            found[metric_key("slices", family, decision, "worst_recall")] = min(recalls)
    return found


def rows_as_records(rows: Sequence[SliceRow]) -> list[dict[str, Any]]:
    """The table file's rows (``slices.csv``)."""
    return [
        {"family": r.family, "slice": r.slice, "decision": r.decision, "n": r.n, "positives": r.positives,
         "negatives": r.negatives, **r.values, "note": r.note, "flag": r.flag}
        for r in rows
    ]  # fmt: skip
