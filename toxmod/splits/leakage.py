"""Leakage checks: exact and normalized-text duplicates across splits, and against an older split."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from toxmod.data.datasets import SPLIT_NAMES, LabeledDataset
from toxmod.errors import SplitError
from toxmod.splits.manifest import Split

# Texts of these evaluation splits must never appear in train.
BLOCKING_PAIRS = (("train", "calib"), ("train", "holdout"))


def _pair_name(a: str, b: str) -> str:
    return f"{a}~{b}"


def leakage_report(dataset: LabeledDataset, split: Split, max_examples: int = 5) -> dict[str, Any]:
    """Counts of rows in split B whose exact / normalized text also occurs in split A, for every pair."""
    exact = {name: set(dataset.texts[split.rows[name]]) for name in SPLIT_NAMES}
    normalized_texts = {name: list(dataset.normalized_texts[split.rows[name]]) for name in SPLIT_NAMES}
    normalized = {name: set(values) for name, values in normalized_texts.items()}
    pairs: dict[str, Any] = {}
    for a, b in combinations(SPLIT_NAMES, 2):
        rows_b = split.rows[b]
        exact_hits = [i for i, t in zip(rows_b, dataset.texts[rows_b]) if t in exact[a]]
        norm_hits = [i for i, t in zip(rows_b, normalized_texts[b]) if t in normalized[a]]
        pairs[_pair_name(a, b)] = {
            "exact": len(exact_hits),
            "normalized": len(norm_hits),
            "example_ids": [str(dataset.ids[i]) for i in norm_hits[:max_examples]],
        }
    within = {name: len(normalized_texts[name]) - len(normalized[name]) for name in SPLIT_NAMES}
    blocking = {
        _pair_name(a, b): pairs[_pair_name(a, b)]["normalized"]
        for a, b in BLOCKING_PAIRS
        if pairs[_pair_name(a, b)]["normalized"]
    }
    return {"pairs": pairs, "duplicates_within": within, "blocking": blocking, "leaks": bool(blocking)}


def enforce_no_leakage(report: dict[str, Any], allow_leakage: bool) -> None:
    """Refuse (one line, with counts) when calib or holdout texts appear in train."""
    if report["blocking"] and not allow_leakage:
        found = []
        for pair, n in report["blocking"].items():
            source, target = pair.split("~")
            ids = report["pairs"][pair]["example_ids"]
            more = " ..." if n > len(ids) else ""
            found.append(f"{n} {target} rows have a {source} text (ids {', '.join(ids)}{more})")
        raise SplitError(
            f"leakage: {'; '.join(found)} (exact or after normalization). Choose: split.on_leak=purge_train "
            "(drop those train rows; the evaluation splits stay), split.allow_leakage=true (keep them, "
            "recorded as leakage_found), or fix the split in the data"
        )


def purge_train_leaks(dataset: LabeledDataset, split: Split) -> Split:
    """Drop train rows whose normalized text occurs in valid, calib or holdout (evaluation rows untouched)."""
    evaluation = {
        t for name in ("valid", "calib", "holdout") for t in dataset.normalized_texts[split.rows[name]]
    }
    train = split.rows["train"]
    keep = np.array([t not in evaluation for t in dataset.normalized_texts[train]], dtype=bool)
    rows = dict(split.rows, train=train[keep])
    notes = dict(split.notes, purged_train_rows=int((~keep).sum()))
    return Split(rows=rows, source=split.source, notes=notes)


def compare_with_previous(dataset: LabeledDataset, split: Split, previous: Split) -> dict[str, Any]:
    """How a new split relates to an older one: moved IDs, and new-train texts in old calib/holdout."""

    def split_of(s: Split) -> dict[str, str]:
        return {str(dataset.ids[p]): name for name in SPLIT_NAMES for p in s.rows[name]}

    new, old = split_of(split), split_of(previous)
    moved: dict[str, int] = {}
    for identifier, name in new.items():
        before = old.get(identifier)
        if before is not None and before != name:
            key = f"{before}->{name}"
            moved[key] = moved.get(key, 0) + 1
    new_train = set(dataset.normalized_texts[split.rows["train"]])
    old_eval_leaks = {
        name: int(sum(t in new_train for t in dataset.normalized_texts[previous.rows[name]]))
        for name in ("calib", "holdout")
    }
    return {"moved_ids": moved, "new_train_texts_in_previous": old_eval_leaks}
