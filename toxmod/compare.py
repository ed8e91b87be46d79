"""``python -m toxmod.compare``: a table of finished MLflow runs that share one split hash.

Runs evaluated on different splits are never put side by side silently: by default only runs on the
newest run's split are shown (the rest are counted), explicit ``runs=[...]`` spanning splits are
refused, and ``allow_mixed_splits=true`` shows them together with a split column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import instantiate_component, run_entry_point
from toxmod.errors import ToxmodError, exit_on_user_error
from toxmod.reports import console, rows_table

COST_COLUMNS = {
    "train_seconds": "train_s",
    "model_size_bytes": "size_mb",
    "scoring_texts_per_second": "texts/s",
}
SCALE = {"model_size_bytes": 1e-6}


@dataclass(frozen=True)
class Comparison:
    """The runs shown, the split they share (None when mixed), and how many were left out."""

    runs: list[Any]
    split_sha256: str | None
    left_out: dict[str, int]


def _finished_runs(client: Any, experiments: Sequence[str] | None, max_runs: int) -> list[Any]:
    if experiments:
        found = [client.get_experiment_by_name(name) for name in experiments]
        missing = [name for name, e in zip(experiments, found) if e is None]
        if missing:
            raise ToxmodError(f"experiments={missing} not found in the tracking store")
        ids = [e.experiment_id for e in found]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(
        ids,
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=max_runs,
    )


def select_runs(
    client: Any,
    split_sha256: str | None = None,
    runs: Sequence[str] | None = None,
    allow_mixed_splits: bool = False,
    experiments: Sequence[str] | None = None,
    max_runs: int = 50,
) -> Comparison:
    """Pick the runs to compare, enforcing one split hash unless mixed splits are allowed."""
    if runs:
        chosen = [client.get_run(r) for r in runs]
        hashes = {r.info.run_id: r.data.tags.get("split_sha256", "?") for r in chosen}
        if len(set(hashes.values())) > 1 and not allow_mixed_splits:
            detail = ", ".join(f"{rid[:8]}: {h[:12]}" for rid, h in hashes.items())
            raise ToxmodError(
                f"refusing to compare runs evaluated on different splits ({detail}); their metrics are not "
                "comparable. Pass allow_mixed_splits=true to show them anyway"
            )
        shared = next(iter(hashes.values())) if len(set(hashes.values())) == 1 else None
        return Comparison(chosen, shared, {})
    candidates = _finished_runs(client, experiments, max_runs)
    if not candidates:
        raise ToxmodError("no FINISHED runs in the tracking store (train one with `python -m toxmod.train`)")
    if allow_mixed_splits:
        return Comparison(candidates, None, {})
    target = split_sha256 or candidates[0].data.tags.get("split_sha256")
    shown = [r for r in candidates if r.data.tags.get("split_sha256") == target]
    left_out: dict[str, int] = {}
    for r in candidates:
        other = r.data.tags.get("split_sha256", "?")
        if other != target:
            left_out[other] = left_out.get(other, 0) + 1
    if not shown:
        raise ToxmodError(f"no FINISHED runs have split_sha256={target}")
    return Comparison(shown, target, left_out)


def comparison_rows(comparison: Comparison, metrics: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows: run, model, data, primary label recall/FPR, the requested metrics, costs."""
    present = [m for m in metrics if any(m in r.data.metrics for r in comparison.runs)]
    mixed = comparison.split_sha256 is None
    columns = ["run", "model", "data", *(["split"] if mixed else []), "primary", "recall", "fpr"]
    columns += [m.removeprefix("holdout/") for m in present] + list(COST_COLUMNS.values())
    rows = []
    for run in comparison.runs:
        tags, values = run.data.tags, run.data.metrics
        primary = tags.get("primary_label", "")
        row: list[Any] = [run.info.run_id[:8], tags.get("model", "?"), tags.get("dataset", "?")]
        if mixed:
            row.append(tags.get("split_sha256", "?")[:12])
        row += [primary, values.get(f"holdout/{primary}/recall"), values.get(f"holdout/{primary}/fpr")]
        row += [values.get(m) for m in present]
        row += [None if values.get(m) is None else values[m] * SCALE.get(m, 1.0) for m in COST_COLUMNS]
        rows.append(row)
    return columns, rows


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    if cfg.tracking.get("_target_", "").endswith("NullTracker"):
        raise ToxmodError("compare reads the MLflow store; it cannot run with tracking=none")
    tracker = instantiate_component(cfg.tracking, "tracking")
    comparison = select_runs(
        tracker.client,
        cfg.split_sha256,
        list(cfg.runs) if cfg.runs else None,
        bool(cfg.allow_mixed_splits),
        list(cfg.experiments) if cfg.experiments else None,
        int(cfg.max_runs),
    )
    columns, rows = comparison_rows(comparison, list(cfg.metrics))
    title = (
        f"runs on split {comparison.split_sha256[:12]}" if comparison.split_sha256 else "runs on MIXED splits"
    )
    console.print(rows_table(title, columns, rows))
    for other, count in comparison.left_out.items():
        console.print(
            f"left out {count} run(s) on another split ({other[:12]}): different holdout, not comparable;"
            f" split_sha256={other} shows them"
        )
    return comparison


def main() -> Any:
    """Console entry point (``toxmod-compare`` / ``python -m toxmod.compare``)."""
    return run_entry_point("compare", _hydra_main)


if __name__ == "__main__":
    main()
