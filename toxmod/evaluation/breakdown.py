"""Beyond one number: a scored set of rows broken down by slice and by identity (``evaluation.*``).

Shared by training (on the holdout) and ``toxmod.evaluate`` (on any labelled data): both hand over the
decisions' scores, targets and thresholds, the texts and the data columns kept for evaluation.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.datasets import expand_patterns
from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError
from toxmod.evaluation.bias import BIAS_AUCS, BiasReport, bias_report, membership
from toxmod.evaluation.slices import (
    TEXT_LENGTH,
    SliceRow,
    SliceSettings,
    rows_as_records,
    slice_keys,
    slice_metrics,
    slice_table,
)
from toxmod.spec import EvaluationSpec

SLICES_FILE = "slices.csv"
BIAS_FILE = "bias.csv"


@dataclass(frozen=True)
class BreakdownSettings:
    """``evaluation.*``: slice columns and edges, identity columns, and the smallest usable sizes."""

    slices: SliceSettings = field(default_factory=SliceSettings)
    identities: tuple[str, ...] = ()
    min_identity_examples: int = 100
    bias_decision: str | None = None  # null: the primary decision

    @property
    def wanted(self) -> bool:
        return bool(self.slices.columns or self.identities)

    def data_columns(self, present: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(setting, column) pairs to keep from the data file (``text_length`` is derived from the
        text unless the data has a column of that name)."""
        wanted = [("evaluation.slices", c) for c in self.slices.columns]
        wanted = [(k, c) for k, c in wanted if c != TEXT_LENGTH or (present and c in present)]
        return wanted + [("evaluation.identities", c) for c in self.identities]


def settings_from(spec: EvaluationSpec, bootstrap: int, seed: int) -> BreakdownSettings:
    """The ``evaluation`` settings with the run's ``bootstrap``/``seed`` (a run saved before the block
    existed gets the YAML defaults: nothing sliced)."""
    edges = {column: list(values) for column, values in (spec.slice_edges or {}).items()}
    slices = SliceSettings(
        columns=spec.slices,
        edges=edges,
        min_positives=spec.min_slice_positives,
        min_negatives=spec.min_slice_negatives,
        max_slices=spec.max_slices,
        worst=spec.worst_slices,
        bootstrap=int(bootstrap),
        seed=int(seed),
    )
    return BreakdownSettings(slices, spec.identities, spec.min_identity_examples, spec.bias_decision)


@dataclass(frozen=True)
class Breakdown:
    slices: list[SliceRow]
    bias: BiasReport | None

    def metrics(self) -> dict[str, float]:
        return slice_metrics(self.slices) | (self.bias.metrics() if self.bias else {})

    def write(self, folder: Path) -> list[Path]:
        """``slices.csv`` and ``bias.csv`` (when computed) in ``folder``; the paths written."""
        written = []
        if self.slices:
            written.append(_write_csv(folder / SLICES_FILE, rows_as_records(self.slices)))
        if self.bias is not None:
            written.append(_write_csv(folder / BIAS_FILE, self.bias_records()))
        return written

    def slice_records(self) -> list[dict[str, Any]]:
        return rows_as_records(self.slices)

    def bias_records(self) -> list[dict[str, Any]]:
        """One row per identity scored (worst subgroup AUC first), then one per identity skipped."""
        if self.bias is None:
            return []
        records: list[dict[str, Any]] = [
            {"identity": r.identity, "n": r.n, "positives": r.positives, "skipped": ""}
            | {name: getattr(r, name) for name in BIAS_AUCS}
            for r in self.bias.identities
        ]
        return records + [{"identity": name, "skipped": why} for name, why in self.bias.skipped.items()]


def _write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    names = list(dict.fromkeys(k for record in records for k in record))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows({k: "" if _is_nan(v) else v for k, v in record.items()} for record in records)
    return path


def check_columns(
    settings: BreakdownSettings, texts: Sequence[str], columns: Mapping[str, np.ndarray], where: str
) -> None:
    """Refuse, before anything is trained or scored, slice and identity columns the data cannot give
    (text in an identity column, too many categories, an empty bucket)."""
    for column in settings.slices.columns:
        values = columns.get(column)
        if values is None:
            values = np.array([len(t) for t in texts])
        slice_keys(column, list(values), settings.slices.edges.get(column), settings.slices.max_slices, where)
    for name in _identity_columns(settings, columns, where):
        membership(name, columns[name], where)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def breakdown(
    settings: BreakdownSettings,
    scheme: LabelScheme,
    scores: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray,
    texts: Sequence[str],
    columns: Mapping[str, np.ndarray],
    fpr_targets: Mapping[str, float],
    where: str,
    require_all: bool = True,
) -> Breakdown:
    """Slice rows of every decision and the bias report of one decision, for these rows."""
    decisions = scheme.decision_names
    decision_scores, truth = scheme.decision_scores(scores), scheme.decision_targets(targets)
    flagged = decision_scores >= np.asarray(thresholds)[None, :]
    rows: list[SliceRow] = []
    for column in settings.slices.columns:
        values = columns.get(column)
        if values is None and column == TEXT_LENGTH:
            values = np.array([len(t) for t in texts])
        assert values is not None, column  # build_dataset kept every sliced column
        edges = settings.slices.edges.get(column)
        keys = slice_keys(column, list(values), edges, settings.slices.max_slices, where, require_all)
        rows += slice_table(column, keys, decisions, truth, flagged, fpr_targets, settings.slices)
    bias = None
    if settings.identities:
        decision = settings.bias_decision or scheme.primary_decision
        if decision not in decisions:
            raise ConfigError(f"evaluation.bias_decision={decision!r}; decisions are {decisions}")
        j = decisions.index(decision)
        members = {
            name.removeprefix("identity_"): membership(name, columns[name], where)
            for name in _identity_columns(settings, columns, where)
        }
        bias = bias_report(
            decision, members, truth[:, j], decision_scores[:, j], settings.min_identity_examples
        )
    return Breakdown(rows, bias)


def _identity_columns(
    settings: BreakdownSettings, columns: Mapping[str, np.ndarray], where: str
) -> list[str]:
    """The kept columns the ``identities`` patterns name, expanded as ``build_dataset`` expanded them."""
    wanted = [("evaluation.identities", pattern) for pattern in settings.identities]
    return [column for _, column in expand_patterns(wanted, list(columns), where)]
