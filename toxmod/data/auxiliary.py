"""Auxiliary targets: extra training-only labels (multi-task heads), never scored or reported.

A dataset often carries finer labels than the ones a model is judged on: Janitr's ``scam`` bucket
is a union of ~20 raw taxonomy tags (scam, spam, promo, phishing, ...), kept in a ``|``-joined
``labels`` column. Training extra heads on those tags gives the encoder the distinctions the bucket
hides; the heads are cut off after training, so the saved model, its scores, thresholds and metrics
are those of the data config's label scheme only. Configured by ``data.auxiliary``::

    auxiliary:
      tags_column: labels      # a column of delimited tags ...
      separator: "|"
      columns: []              # ... and/or binary 0/1 columns
      exclude: [clean]         # tags that are not auxiliary targets
      min_train_count: 20      # keep tags with at least this many positives in the train split
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from toxmod.errors import ConfigError

AUXILIARY_KEYS = {"tags_column", "separator", "columns", "exclude", "min_train_count"}


@dataclass(frozen=True)
class AuxiliaryTargets:
    """Binary auxiliary targets: one named column per tag, one row per example."""

    names: list[str]
    values: np.ndarray  # (n, A) int64

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> AuxiliaryTargets:
        """Rows selected by a boolean mask or an integer index."""
        return AuxiliaryTargets(self.names, self.values[index])

    def supported(self, min_count: int) -> AuxiliaryTargets:
        """The columns with at least ``min_count`` positives here (call it on the train split)."""
        keep = self.values.sum(axis=0) >= min_count
        return AuxiliaryTargets([n for n, k in zip(self.names, keep, strict=True) if k], self.values[:, keep])


def auxiliary_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``data.auxiliary`` checked for unknown keys (None when off)."""
    if not cfg:
        return None
    settings = dict(cfg)
    unknown = sorted(set(settings) - AUXILIARY_KEYS)
    if unknown:
        raise ConfigError(f"data.auxiliary has unknown keys {unknown}; expected {sorted(AUXILIARY_KEYS)}")
    if not settings.get("tags_column") and not settings.get("columns"):
        raise ConfigError("data.auxiliary needs data.auxiliary.tags_column or data.auxiliary.columns")
    return settings


def auxiliary_columns(settings: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(config key, column) pairs ``data.auxiliary`` says must exist in the file."""
    if not settings:
        return []
    pairs = [("auxiliary.columns", str(c)) for c in settings.get("columns") or []]
    if settings.get("tags_column"):
        pairs.append(("auxiliary.tags_column", str(settings["tags_column"])))
    return pairs


def read_auxiliary(
    frame: pd.DataFrame, settings: Mapping[str, Any], binary_column: Any, where: str
) -> AuxiliaryTargets:
    """All auxiliary columns of ``frame`` (tags sorted by name, then binary columns in config order).

    ``binary_column(frame, column, where)`` validates a 0/1 column (the dataset reader's own check).
    Selection by train support happens later, once the split is known (``AuxiliaryTargets.supported``).
    """
    exclude = {str(t) for t in settings.get("exclude") or []}
    names: list[str] = []
    columns: list[np.ndarray] = []
    tags_column = settings.get("tags_column")
    if tags_column:
        separator = str(settings.get("separator") or "|")
        tag_lists = (
            frame[tags_column]
            .astype(str)
            .map(lambda value: {t.strip() for t in value.split(separator) if t.strip()})
        )
        for tag in sorted(set().union(*tag_lists) - exclude):
            names.append(tag)
            columns.append(tag_lists.map(lambda tags, tag=tag: tag in tags).to_numpy().astype(np.int64))
    for column in settings.get("columns") or []:
        if str(column) in names:
            raise ConfigError(f"data.auxiliary.columns: {column!r} is also a tag of {tags_column!r}")
        names.append(str(column))
        columns.append(binary_column(frame, str(column), where))
    values = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0), dtype=np.int64)
    return AuxiliaryTargets(names, values)
