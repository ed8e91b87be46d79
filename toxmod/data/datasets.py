"""Build a labelled dataset from a data config: read, validate, encode targets under the label scheme."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from toxmod.data.auxiliary import AuxiliaryTargets, auxiliary_columns, auxiliary_settings, read_auxiliary
from toxmod.data.readers import file_sha256, read_table
from toxmod.data.schemes import LabelScheme, LevelsScheme, MultiLabelScheme
from toxmod.data.text import normalize_text
from toxmod.errors import ConfigError, DataError

SPLIT_NAMES = ("train", "valid", "calib", "holdout")
_TRUE = {"1", "true", "True", "TRUE", 1}
_FALSE = {"0", "false", "False", "FALSE", 0}


@dataclass(frozen=True)
class LabeledDataset:
    """Texts, IDs and encoded targets of one dataset, plus what the file itself says about splits."""

    name: str
    path: Path
    sha256: str
    ids: np.ndarray  # (n,) str
    texts: np.ndarray  # (n,) str (object)
    targets: np.ndarray  # multilabel: (n, L) int; levels: (n,) int
    scheme: LabelScheme
    given_splits: np.ndarray | None = None  # (n,) train/valid/calib/holdout from the data's split column
    groups: np.ndarray | None = None  # (n,) group keys that must not straddle splits
    auxiliary: AuxiliaryTargets | None = None  # training-only extra targets (``data.auxiliary``)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def normalized_texts(self) -> np.ndarray:
        """``normalize_text`` of every text, computed once (dedupe, purge and leakage checks share it)."""
        return np.array([normalize_text(t) for t in self.texts], dtype=object)

    def subset(self, index: np.ndarray) -> LabeledDataset:
        """Rows selected by a boolean mask or an integer index."""
        return replace(
            self,
            ids=self.ids[index],
            texts=self.texts[index],
            targets=self.targets[index],
            given_splits=None if self.given_splits is None else self.given_splits[index],
            groups=None if self.groups is None else self.groups[index],
            auxiliary=None if self.auxiliary is None else self.auxiliary.subset(index),
        )


def build_dataset(cfg: DictConfig | dict[str, Any]) -> LabeledDataset:
    """Read ``cfg.path`` and return a validated ``LabeledDataset`` (one-line DataError on bad input)."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    if cfg.get("path") in (None, "", "???"):
        raise ConfigError("data.path is not set: point it at a CSV, TSV or JSONL file")
    path = Path(str(cfg.path)).expanduser()
    frame = read_table(path)
    where = f"data file {path}"
    auxiliary = auxiliary_settings(cfg.get("auxiliary"))

    _require_columns(frame, _referenced_columns(cfg) + auxiliary_columns(auxiliary), where)
    split_column = cfg.get("split_column")
    if split_column and cfg.get("exclude_splits"):
        frame = frame[~frame[split_column].astype(str).isin([str(v) for v in cfg.exclude_splits])]
    frame = frame.reset_index(drop=True)

    texts = _validated_texts(frame, cfg.text_column, where)
    ids = _validated_ids(frame, cfg.get("id_column"), where)
    scheme, targets = encode_targets(frame, cfg, where)
    given_splits = _given_splits(frame, cfg, where) if split_column else None
    groups = frame[cfg.group_column].astype(str).to_numpy() if cfg.get("group_column") else None

    dataset = LabeledDataset(
        name=str(cfg.get("name", path.stem)),
        path=path.resolve(),
        sha256=file_sha256(path),
        ids=ids,
        texts=texts,
        targets=targets,
        scheme=scheme,
        given_splits=given_splits,
        groups=groups,
        auxiliary=read_auxiliary(frame, auxiliary, _binary_column, where) if auxiliary else None,
    )
    max_rows = cfg.get("max_rows")
    if max_rows and max_rows < len(dataset):
        chosen = np.random.default_rng(int(cfg.get("seed", 0))).choice(
            len(dataset), int(max_rows), replace=False
        )
        dataset = dataset.subset(np.sort(chosen))
    return dataset


def _referenced_columns(cfg: DictConfig) -> list[tuple[str, str]]:
    """(config key, column) pairs the config says must exist."""
    keys = ["text_column", "id_column", "label_column", "score_column", "split_column", "group_column"]
    columns = [(key, cfg.get(key)) for key in keys if cfg.get(key)]
    columns += [("label_columns", c) for c in (cfg.get("label_columns") or [])]
    return columns


def _require_columns(frame: pd.DataFrame, columns: list[tuple[str, str]], where: str) -> None:
    for key, column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{where}: column {column!r} (data.{key}) not found; columns are {list(frame.columns)}"
            )


def _validated_texts(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    values = frame[column]
    non_string = ~values.map(lambda v: isinstance(v, str))
    if non_string.any():
        rows = list(np.flatnonzero(non_string.to_numpy())[:5])
        raise DataError(
            f"{where}: text column {column!r} has {int(non_string.sum())} non-string values (rows {rows})"
        )
    empty = values.str.strip() == ""
    if empty.any():
        rows = list(np.flatnonzero(empty.to_numpy())[:5])
        raise DataError(
            f"{where}: text column {column!r} has {int(empty.sum())} empty texts (rows {rows}); "
            "drop them or exclude them with data.exclude_splits"
        )
    return values.to_numpy(dtype=object)


def _validated_ids(frame: pd.DataFrame, column: str | None, where: str) -> np.ndarray:
    if not column:
        return np.array([str(i) for i in range(len(frame))], dtype=object)
    ids = frame[column].astype(str)
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        examples = sorted(set(duplicated))[:3]
        raise DataError(
            f"{where}: id column {column!r} has {duplicated.nunique()} duplicate IDs (e.g. {examples})"
        )
    return ids.to_numpy(dtype=object)


def _binary_column(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    values = frame[column]
    is_true = values.isin(_TRUE)
    bad = ~(is_true | values.isin(_FALSE))
    if bad.any():
        examples = sorted({str(v) for v in values[bad]})[:5]
        raise DataError(f"{where}: label column {column!r} has values outside {{0, 1}}: {examples}")
    return is_true.to_numpy().astype(np.int64)


def scheme_from_config(cfg: DictConfig | dict[str, Any]) -> LabelScheme:
    """The label scheme a data config describes (``data.scheme`` and its labels): no file is read."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    kind = cfg.get("scheme")
    primary = cfg.get("primary_label") or ""
    if kind == "multilabel":
        labels = [str(label) for label in cfg.get("label_columns") or []]
        if not labels:
            raise ConfigError(
                "data.label_columns is empty: a multilabel scheme needs at least one label column"
            )
        if primary and primary not in labels + [cfg.get("none_label")]:
            raise ConfigError(f"data.primary_label={primary!r} is not one of data.label_columns {labels}")
        return MultiLabelScheme(labels, cfg.get("none_label"), primary)
    if kind == "levels":
        levels = [str(level) for level in cfg.get("levels") or []]
        if len(levels) < 2:
            raise ConfigError("data.levels must list at least two levels, lowest first")
        if primary and primary not in levels:
            raise ConfigError(f"data.primary_label={primary!r} is not one of data.levels {levels}")
        return LevelsScheme(levels, primary)
    raise ConfigError(f"data.scheme={kind!r} is not a label scheme; expected 'multilabel' or 'levels'")


def encode_targets(frame: pd.DataFrame, cfg: DictConfig, where: str) -> tuple[LabelScheme, np.ndarray]:
    """The scheme named by ``data.scheme`` and the encoded targets."""
    scheme = scheme_from_config(cfg)
    if isinstance(scheme, MultiLabelScheme):
        return scheme, np.stack([_binary_column(frame, c, where) for c in scheme.labels], axis=1)
    return scheme, _encode_levels(frame, cfg, scheme.levels, where)


def _encode_levels(frame: pd.DataFrame, cfg: DictConfig, levels: list[str], where: str) -> np.ndarray:
    """Level indices from rules over binary columns, binned scores, or a level column."""
    index = {level: i for i, level in enumerate(levels)}
    if cfg.get("level_rules"):
        return _levels_from_rules(frame, cfg, index, where)
    if cfg.get("score_column"):
        return _levels_from_scores(frame, cfg, levels, where)
    column = cfg.get("label_column")
    if not column:
        raise ConfigError("a levels scheme needs data.label_column, data.level_rules or data.score_column")
    raw = frame[column].astype(str)
    mapping = {str(k): str(v) for k, v in (cfg.get("level_values") or {}).items()}
    names = raw.map(mapping) if mapping else raw
    unknown = ~names.isin(index)
    if unknown.any():
        examples = sorted(set(raw[unknown]))[:5]
        expected = sorted(mapping) if mapping else levels
        raise DataError(
            f"{where}: label column {column!r} has values outside the levels {expected}: {examples}"
        )
    return names.map(index).to_numpy().astype(np.int64)


def _levels_from_rules(frame: pd.DataFrame, cfg: DictConfig, index: dict[str, int], where: str) -> np.ndarray:
    default = cfg.get("default_level") or next(iter(index))
    if default not in index:
        raise ConfigError(f"data.default_level={default!r} is not one of data.levels {list(index)}")
    result = np.full(len(frame), index[default], dtype=np.int64)
    assigned = np.zeros(len(frame), dtype=bool)
    for level, expression in cfg.level_rules.items():  # most severe first: the first matching rule wins
        if level not in index:
            raise ConfigError(f"data.level_rules has level {level!r}, not one of data.levels {list(index)}")
        columns = [c for c in re.findall(r"[A-Za-z_]\w*", expression) if c in frame.columns]
        binary = pd.DataFrame({c: _binary_column(frame, c, where).astype(bool) for c in columns})
        try:
            matched = binary.eval(expression).to_numpy(dtype=bool)
        except Exception as error:  # pandas raises many types for a malformed expression
            raise ConfigError(f"data.level_rules.{level}: cannot evaluate {expression!r}: {error}") from error
        result[matched & ~assigned] = index[level]
        assigned |= matched
    return result


def _levels_from_scores(frame: pd.DataFrame, cfg: DictConfig, levels: list[str], where: str) -> np.ndarray:
    column = cfg.score_column
    bins = [float(b) for b in (cfg.get("level_bins") or [])]
    if len(bins) != len(levels) - 1 or bins != sorted(bins):
        raise ConfigError(
            f"data.level_bins must hold {len(levels) - 1} increasing cut points for {len(levels)} levels"
        )
    scores = pd.to_numeric(frame[column], errors="coerce")
    if scores.isna().any():
        examples = list(frame[column][scores.isna()].head(3))
        raise DataError(f"{where}: score column {column!r} has non-numeric values: {examples}")
    # A score equal to a cut point belongs to the lower level (bins are upper edges, inclusive).
    return np.digitize(scores.to_numpy(), bins, right=True).astype(np.int64)


def _given_splits(frame: pd.DataFrame, cfg: DictConfig, where: str) -> np.ndarray:
    column = cfg.split_column
    mapping = {str(k): str(v) for k, v in (cfg.get("split_values") or {}).items()}
    raw = frame[column].astype(str)
    names = raw.map(lambda v: mapping.get(v, v))
    unknown = ~names.isin(SPLIT_NAMES)
    if unknown.any():
        examples = sorted(set(raw[unknown]))[:5]
        raise DataError(
            f"{where}: split column {column!r} has values {examples} that are not one of {list(SPLIT_NAMES)} "
            "(map them with data.split_values or drop them with data.exclude_splits)"
        )
    return names.to_numpy(dtype=object)
