"""The compare stage: a table of finished runs that share one split hash.

Runs evaluated on different splits are never put side by side silently: by default only runs on the
newest run's split are shown (the rest are counted), explicit ``runs=[...]`` spanning splits are
refused, and ``allow_mixed_splits=true`` shows them together with a split column.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from toxmod.config import instantiate_component
from toxmod.errors import ConfigError, ToxmodError
from toxmod.progress import console, notes_console, print_whole
from toxmod.runs.budget import budget_note
from toxmod.runs.gc import collect
from toxmod.runs.provenance import environment_notes
from toxmod.runs.store import FINISHED, NoStore, RunStore, StoredRun
from toxmod.stages.runs import report as report_collected
from toxmod.tables import rows_table, rows_text

COST_COLUMNS = {
    "train_seconds": "train_s",
    "model_size_bytes": "size_mb",
    "model_parameters": "params_m",
    "scoring_texts_per_second": "holdout_texts/s",  # the whole holdout in one call (report: batches of 64)
    "latency/batch1_ms_per_text": "ms/text",  # one text per call (the serving case)
    "llm/prompt_tokens_max": "ctx_tokens",  # LLMs: the longest prompt, the context actually used
}
SCALE = {"model_size_bytes": 1e-6, "model_parameters": 1e-6}
TABLE_FORMATS = ("table", "csv", "markdown")
FILE_FORMATS = {".csv": "csv", ".md": "markdown"}


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
    allow_unfinished: bool = False,
) -> Comparison:
    """Pick the runs to compare, enforcing one split hash unless mixed splits are allowed, and
    finished runs unless unfinished ones are asked for (they have no or partial numbers)."""
    if runs:
        chosen = [store.get(r) for r in runs]
        unfinished = {r.run_id[:8]: r.status for r in chosen if not r.finished}
        if unfinished and not allow_unfinished:
            raise ToxmodError(
                f"runs {unfinished} did not finish; their numbers are partial or missing. "
                "Pass allow_unfinished=true to show them anyway"
            )
        hashes = {r.run_id: r.split_sha256 or "?" for r in chosen}
        if len(set(hashes.values())) > 1 and not allow_mixed_splits:
            detail = ", ".join(f"{rid[:8]}: {h[:12]}" for rid, h in hashes.items())
            raise ToxmodError(
                f"refusing to compare runs evaluated on different splits ({detail}); their metrics are not "
                "comparable. Pass allow_mixed_splits=true to show them anyway"
            )
        shared = next(iter(hashes.values())) if len(set(hashes.values())) == 1 else None
        return Comparison(chosen, shared, {})
    found = store.search(experiments, status=None if allow_unfinished else FINISHED, max_results=max_runs)
    candidates = [r for r in found if r.split_sha256]  # not those that failed before their split was made
    if not candidates:
        raise ToxmodError("no FINISHED runs in the tracking store (train one with `python -m toxmod.train`)")
    if allow_mixed_splits:
        return Comparison(candidates, None, {})
    target = full_hash(split_sha256, candidates) if split_sha256 else candidates[0].split_sha256
    shown = [r for r in candidates if r.split_sha256 == target]
    left_out: dict[str, int] = {}
    for r in candidates:
        other = r.split_sha256 or "?"
        if other != target:
            left_out[other] = left_out.get(other, 0) + 1
    if not shown:
        raise ToxmodError(f"no FINISHED runs have split_sha256={target}")
    return Comparison(shown, target, left_out)


def full_hash(prefix: str, runs: Sequence[StoredRun]) -> str:
    """The one split hash of ``runs`` that starts with ``prefix`` (tables show 12 hex digits)."""
    found = sorted(
        {r.split_sha256 for r in runs if r.split_sha256 and r.split_sha256.startswith(str(prefix))}
    )
    if len(found) > 1:
        raise ConfigError(
            f"split_sha256={prefix} starts {len(found)} split hashes ({', '.join(h[:16] for h in found)})"
        )
    return found[0] if found else str(prefix)


def sorted_by(comparison: Comparison, metric: str, descending: bool = True) -> Comparison:
    """The runs ordered by ``metric`` (best first by default); runs without it go last."""

    def key(run: StoredRun) -> tuple[bool, float]:
        value = run.metrics.get(metric)
        if value is None or value != value:
            return True, 0.0
        return False, -value if descending else value

    return dataclasses.replace(comparison, runs=sorted(comparison.runs, key=key))


def breakdown_columns(runs: Sequence[StoredRun]) -> list[str]:
    """The holdout's worst slice FPR and recall per slice family and decision, and the bias final
    score, of runs trained with ``evaluation.slices`` / ``evaluation.identities``."""
    names = {k for r in runs for k in r.metrics if k.startswith("holdout/slices/")}
    names |= {k for r in runs for k in r.metrics if k == "holdout/bias/final_score"}
    return sorted(names)


def comparison_rows(comparison: Comparison, metrics: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows: run, model, data, primary label recall/FPR on the holdout, whether the
    run is within its FPR budget (``budget``: valid and holdout), the requested metrics, costs."""
    present = [m for m in metrics if any(m in r.metrics for r in comparison.runs)]
    present += breakdown_columns(comparison.runs)
    mixed = comparison.split_sha256 is None
    columns = ["run", "name", "status", "model", "kind", "data", *(["split"] if mixed else []), "primary"]
    columns += ["recall", "fpr", "budget", "environment"]
    columns += [m.removeprefix("holdout/") for m in present] + list(COST_COLUMNS.values())
    rows = []
    environments = environment_notes(comparison.runs)
    for run in comparison.runs:
        tags, values = run.tags, run.metrics
        primary = tags.get("primary_label", "")
        row: list[Any] = [
            run.run_id[:8],
            run.name,
            run.status,
            tags.get("model", "?"),
            tags.get("model_kind", "?"),
            tags.get("dataset", "?"),
        ]
        if mixed:
            row.append((run.split_sha256 or "?")[:12])
        row += [primary, values.get(f"holdout/{primary}/recall"), values.get(f"holdout/{primary}/fpr")]
        row += [budget_note(run), environments[run.run_id]]
        row += [values.get(m) for m in present]
        row += [None if values.get(m) is None else values[m] * SCALE.get(m, 1.0) for m in COST_COLUMNS]
        rows.append(row)
    return columns, rows


def compare(cfg: DictConfig) -> Comparison:
    """Select the runs as configured and print the table (and what was left out)."""
    store = instantiate_component(cfg.tracking, "tracking").store()
    if isinstance(store, NoStore):
        raise ToxmodError("compare reads the MLflow store; it cannot run with tracking=none")
    store.require("compare")
    fmt = str(cfg.get("format") or "table")
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"format={fmt}: expected one of {list(TABLE_FORMATS)}")
    output = Path(str(cfg.output)).expanduser() if cfg.get("output") else None
    if output is not None and output.suffix not in FILE_FORMATS:
        raise ConfigError(f"output={output}: name a .csv or .md file")
    notes = console if fmt == "table" else notes_console  # stdout stays pure CSV / markdown
    report_collected(collect(store), notes)  # runs a dead process left RUNNING are shown as FAILED
    comparison = select_runs(
        store,
        cfg.split_sha256,
        list(cfg.runs) if cfg.runs else None,
        bool(cfg.allow_mixed_splits),
        list(cfg.experiments) if cfg.experiments else None,
        int(cfg.max_runs),
        bool(cfg.allow_unfinished),
    )
    sort_by = str(cfg.get("sort_by") or cfg.metrics[0])
    comparison = sorted_by(comparison, sort_by, descending=not cfg.ascending)
    columns, rows = comparison_rows(comparison, list(cfg.metrics))
    shared = comparison.split_sha256
    title = f"runs on split {shared[:12]}" if shared else "runs on MIXED splits"
    if fmt == "table":
        print_whole(rows_table(f"{title}, by {sort_by}", columns, rows))
    else:
        sys.stdout.write(rows_text(columns, rows, fmt))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rows_text(columns, rows, FILE_FORMATS[output.suffix]))
        notes.print(f"wrote {output}")
    for other, count in comparison.left_out.items():
        notes.print(
            f"left out {count} run(s) on another split ({other[:12]}): different holdout, not comparable;"
            f" split_sha256={other} shows them"
        )
    return comparison
