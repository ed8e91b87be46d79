"""Scoring a finished run on labelled data other than its own (``toxmod.evaluate data=...``).

The data is read with its own data config (any ``conf/data`` config, or ``data=csv``), every row (or
one split of its split column: ``data_split``), scored at the run's own thresholds through the
scoring interface, and judged with the same metrics as training under a label mapping
(``evaluation/transfer.py``). Texts the run was trained on are counted: transfer numbers on them
would flatter the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from toxmod.config import as_dict, spec_of
from toxmod.data import LabeledDataset, build_dataset
from toxmod.errors import ConfigError, ToxmodError
from toxmod.evaluation import evaluate_predictions
from toxmod.evaluation.breakdown import BreakdownSettings, check_columns
from toxmod.evaluation.scoring import score_split
from toxmod.evaluation.transfer import LabelMapping, MappedView, label_mapping, mapped_view
from toxmod.models import Opening
from toxmod.progress import console
from toxmod.runs.opening import OpenedModel, load_data
from toxmod.spec import DataSpec


@dataclass(frozen=True)
class ScoredRows:
    """Rows a run was scored on: what they are called, their digest, and what the metrics read."""

    name: str
    digest: str
    source: dict[str, Any]
    view: MappedView
    texts: list[str]
    columns: dict[str, np.ndarray]
    metrics: dict[str, float]
    mapping: LabelMapping | None = None
    train_overlap: int | None = None  # rows whose text is in the run's training split (None: not checked)

    def fpr_targets(self, targets: Mapping[str, float]) -> dict[str, float]:
        """The run's per-decision FPR budgets under the names the view uses."""
        pairs = self.mapping.pairs if self.mapping else tuple((d, d) for d in targets)
        return {data: targets[run] for run, data in pairs if run in targets}


def rows_digest(dataset: LabeledDataset) -> str:
    """The file's hash and the rows taken from it: two evaluations share a digest only on the same rows."""
    hashed = hashlib.sha256(dataset.sha256.encode())
    for row_id in dataset.ids:
        hashed.update(str(row_id).encode() + b"\0")
    return hashed.hexdigest()


def score_other_data(
    opened: OpenedModel,
    data_cfg: DictConfig,
    data_split: str | None,
    given_map: Mapping[str, str] | None,
    settings: BreakdownSettings,
    opening: Opening,
    bootstrap: int,
    seed: int,
) -> ScoredRows:
    """The run's metrics on ``data_cfg``'s rows (``data_split``: one split of its split column);
    the slice and identity columns of ``settings`` are kept and checked before anything is scored."""
    dataset = build_dataset(spec_of(DataSpec, data_cfg), settings.data_columns())
    mapping = label_mapping(opened.scheme, dataset.scheme, given_map)  # before minutes of scoring
    if data_split:
        if dataset.given_splits is None:
            raise ConfigError(
                f"data_split={data_split}: data {dataset.name} has no split column (data.split_column)"
            )
        chosen = dataset.given_splits == str(data_split)
        if not chosen.any():
            raise ConfigError(
                f"data_split={data_split}: no rows of {dataset.name} are in it; "
                f"its splits are {sorted(set(dataset.given_splits.tolist()))}"
            )
        dataset = dataset.subset(chosen)
    check_columns(settings, list(dataset.texts), dataset.columns or {}, f"data file {dataset.path}")
    name = f"{dataset.name}.{data_split}" if data_split else dataset.name
    console.print(f"scoring {len(dataset)} rows of {name} ({dataset.path.name}) ...")
    scored = score_split(opened.scorer, dataset)
    view = mapped_view(
        mapping, opened.scheme, dataset.scheme, scored.scores, dataset.targets, opened.thresholds.as_dict()
    )
    metrics = evaluate_predictions(view.scheme, view.scores, view.targets, view.thresholds, bootstrap, seed)
    metrics["texts_per_second"] = scored.texts_per_second
    overlap = _train_overlap(opened, opening, dataset)
    if overlap is not None:
        metrics["train_overlap"] = float(overlap)
    source = {
        "uri": str(dataset.path),
        "sha256": dataset.sha256,
        "data": as_dict(data_cfg),
        "data_split": data_split,
        "rows": len(dataset),
    }
    columns = dataset.columns or {}
    return ScoredRows(
        name, rows_digest(dataset), source, view, list(dataset.texts), columns, metrics, mapping, overlap
    )


def _train_overlap(opened: OpenedModel, opening: Opening, dataset: LabeledDataset) -> int | None:
    """How many rows' (normalized) texts are in the run's training split; None when the run's own
    data cannot be read here (the count is then said to be unchecked)."""
    try:
        own = load_data(opened, opening)
    except ToxmodError as error:
        console.print(
            f"not checked whether these texts were in the run's training data: {error}", soft_wrap=True
        )
        return None
    train = set(own.part("train").normalized_texts.tolist())
    overlap = int(sum(text in train for text in dataset.normalized_texts))
    if overlap:
        share = overlap / max(len(dataset), 1)
        console.print(
            f"{overlap} of {len(dataset)} texts ({share:.1%}) are in the run's training split: "
            "numbers on them flatter the model (train_overlap)",
            soft_wrap=True,
        )
    return overlap


def map_from_config(value: Any) -> dict[str, str] | None:
    """``label_map`` as a plain mapping (None when not given); anything else is one line."""
    if value is None:
        return None
    if not hasattr(value, "items"):
        raise ConfigError(f"label_map={value!r}: expected {{<run decision>: <data label>, ...}}")
    return {str(k): str(v) for k, v in value.items()}
