"""The compare stage: a table of finished runs that share one split hash.

Runs evaluated on different splits are never put side by side silently: by default only runs on the
newest run's split are shown (the rest are counted), explicit ``runs=[...]`` spanning splits are
refused, and ``allow_mixed_splits=true`` shows them together with a split column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from toxmod.config import instantiate_component
from toxmod.errors import ToxmodError
from toxmod.progress import console
from toxmod.reports import rows_table
from toxmod.runs.store import NoStore, RunStore, StoredRun

COST_COLUMNS = {
    "train_seconds": "train_s",
    "model_size_bytes": "size_mb",
    "scoring_texts_per_second": "texts/s",
}
SCALE = {"model_size_bytes": 1e-6}


@dataclass(frozen=True)
class Comparison:
    """The runs shown, the split they share (None when mixed), and how many were left out."""

    runs: list[StoredRun]
    split_sha256: str | None
    left_out: dict[str, int]


def select_runs(
    store: RunStore | NoStore,
    split_sha256: str | None = None,
    runs: Sequence[str] | None = None,
    allow_mixed_splits: bool = False,
    experiments: Sequence[str] | None = None,
    max_runs: int = 50,
) -> Comparison:
    """Pick the runs to compare, enforcing one split hash unless mixed splits are allowed."""
    if runs:
        chosen = [store.get(r) for r in runs]
        hashes = {r.run_id: r.split_sha256 or "?" for r in chosen}
        if len(set(hashes.values())) > 1 and not allow_mixed_splits:
            detail = ", ".join(f"{rid[:8]}: {h[:12]}" for rid, h in hashes.items())
            raise ToxmodError(
                f"refusing to compare runs evaluated on different splits ({detail}); their metrics are not "
                "comparable. Pass allow_mixed_splits=true to show them anyway"
            )
        shared = next(iter(hashes.values())) if len(set(hashes.values())) == 1 else None
        return Comparison(chosen, shared, {})
    candidates = store.search(experiments, max_results=max_runs)
    if not candidates:
        raise ToxmodError("no FINISHED runs in the tracking store (train one with `python -m toxmod.train`)")
    if allow_mixed_splits:
        return Comparison(candidates, None, {})
    target = split_sha256 or candidates[0].split_sha256
    shown = [r for r in candidates if r.split_sha256 == target]
    left_out: dict[str, int] = {}
    for r in candidates:
        other = r.split_sha256 or "?"
        if other != target:
            left_out[other] = left_out.get(other, 0) + 1
    if not shown:
        raise ToxmodError(f"no FINISHED runs have split_sha256={target}")
    return Comparison(shown, target, left_out)


def comparison_rows(comparison: Comparison, metrics: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows: run, model, data, primary label recall/FPR, the requested metrics, costs."""
    present = [m for m in metrics if any(m in r.metrics for r in comparison.runs)]
    mixed = comparison.split_sha256 is None
    columns = ["run", "model", "data", *(["split"] if mixed else []), "primary", "recall", "fpr"]
    columns += [m.removeprefix("holdout/") for m in present] + list(COST_COLUMNS.values())
    rows = []
    for run in comparison.runs:
        tags, values = run.tags, run.metrics
        primary = tags.get("primary_label", "")
        row: list[Any] = [run.run_id[:8], tags.get("model", "?"), tags.get("dataset", "?")]
        if mixed:
            row.append((run.split_sha256 or "?")[:12])
        row += [primary, values.get(f"holdout/{primary}/recall"), values.get(f"holdout/{primary}/fpr")]
        row += [values.get(m) for m in present]
        row += [None if values.get(m) is None else values[m] * SCALE.get(m, 1.0) for m in COST_COLUMNS]
        rows.append(row)
    return columns, rows


def compare(cfg: DictConfig) -> Comparison:
    """Select the runs as configured and print the table (and what was left out)."""
    store = instantiate_component(cfg.tracking, "tracking").store()
    if isinstance(store, NoStore):
        raise ToxmodError("compare reads the MLflow store; it cannot run with tracking=none")
    comparison = select_runs(
        store,
        cfg.split_sha256,
        list(cfg.runs) if cfg.runs else None,
        bool(cfg.allow_mixed_splits),
        list(cfg.experiments) if cfg.experiments else None,
        int(cfg.max_runs),
    )
    columns, rows = comparison_rows(comparison, list(cfg.metrics))
    shared = comparison.split_sha256
    console.print(
        rows_table(f"runs on split {shared[:12]}" if shared else "runs on MIXED splits", columns, rows)
    )
    for other, count in comparison.left_out.items():
        console.print(
            f"left out {count} run(s) on another split ({other[:12]}): different holdout, not comparable;"
            f" split_sha256={other} shows them"
        )
    return comparison
