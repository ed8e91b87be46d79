"""Build a labelled dataset from a data config: read, validate, encode targets under the label scheme."""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from toxmod.data.auxiliary import AuxiliaryTargets, auxiliary_columns, auxiliary_settings, read_auxiliary
from toxmod.data.readers import read_table
from toxmod.data.rules import evaluate_rule, rule_columns
from toxmod.data.schemes import LabelScheme, LevelsScheme, MultiLabelScheme
from toxmod.data.text import normalize_text
from toxmod.errors import ConfigError, DataError
from toxmod.files import file_sha256
from toxmod.progress import warn
from toxmod.spec import DataSpec

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
    columns: dict[str, np.ndarray] | None = None  # other columns kept for evaluation (slices, identities)

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
            columns=None if self.columns is None else {k: v[index] for k, v in self.columns.items()},
        )


def build_dataset(spec: DataSpec, keep_columns: Sequence[tuple[str, str]] = ()) -> LabeledDataset:
    """Read ``spec.path`` and return a validated ``LabeledDataset`` (one-line DataError on bad input).

    ``keep_columns``: (setting, column) pairs of other columns to keep as they are (evaluation slices
    and identities); a missing one is named with its setting.
    """
    if not spec.path:
        raise ConfigError("data.path is not set: point it at a CSV, TSV or JSONL file")
    path = Path(spec.path).expanduser()
    frame = read_table(path)
    where = f"data file {path}"
    auxiliary = auxiliary_settings(spec.auxiliary)

    keep_columns = expand_patterns(keep_columns, list(frame.columns), where)
    _require_columns(frame, _referenced_columns(spec) + auxiliary_columns(auxiliary) + keep_columns, where)
    if spec.split_column and spec.exclude_splits:
        frame = frame[~frame[spec.split_column].astype(str).isin(spec.exclude_splits)]
    if spec.drop_empty_texts:
        frame = _without_empty_texts(frame, spec.text_column, where)

    # Every problem of the file is found before any is reported: one run tells the user all of them.
    problems = Problems(where)
    texts = _validated_texts(frame, spec.text_column, problems)
    ids = _validated_ids(frame, spec.id_column, problems)
    scheme, targets = encode_targets(frame, spec, problems)
    given_splits = (
        _given_splits(frame, spec.split_column, spec.split_values, problems) if spec.split_column else None
    )
    problems.raise_if_any()
    groups = frame[spec.group_column].astype(str).to_numpy() if spec.group_column else None

    dataset = LabeledDataset(
        name=spec.name or path.stem,
        path=path.resolve(),
        sha256=file_sha256(path),
        ids=ids,
        texts=texts,
        targets=targets,
        scheme=scheme,
        given_splits=given_splits,
        groups=groups,
        auxiliary=read_auxiliary(frame, auxiliary, _binary_column, where) if auxiliary else None,
        columns={column: frame[column].to_numpy(dtype=object) for _, column in keep_columns} or None,
    )
    if spec.max_rows and spec.max_rows < len(dataset):
        chosen = np.random.default_rng(spec.seed).choice(len(dataset), spec.max_rows, replace=False)
        dataset = dataset.subset(np.sort(chosen))
    return dataset


def expand_patterns(
    columns: Sequence[tuple[str, str]], present: list[str], where: str
) -> list[tuple[str, str]]:
    """(setting, column) pairs with each glob pattern (``identity_*``) replaced by the columns it
    matches in file order; a pattern matching none is one line naming its setting."""
    expanded: list[tuple[str, str]] = []
    for key, column in columns:
        if not any(c in column for c in "*?["):
            expanded.append((key, column))
            continue
        matched = [c for c in present if fnmatch.fnmatchcase(str(c), column)]
        if not matched:
            raise DataError(f"{where}: no column matches {column!r} ({key}); columns are {present[:20]}")
        expanded += [(key, c) for c in matched]
    return list(dict.fromkeys(expanded))


def _referenced_columns(spec: DataSpec) -> list[tuple[str, str]]:
    """(config key, column) pairs the data settings say must exist."""
    keys = ["text_column", "id_column", "label_column", "score_column", "split_column", "group_column"]
    columns = [(key, getattr(spec, key)) for key in keys if getattr(spec, key)]
    columns += [("label_columns", c) for c in spec.label_columns]
    return columns


def _require_columns(frame: pd.DataFrame, columns: list[tuple[str, str]], where: str) -> None:
    """Every configured column the file lacks, in one line."""
    missing = [
        f"{column!r} ({key if key.startswith('evaluation.') else f'data.{key}'})"
        for key, column in columns
        if column not in frame.columns
    ]
    if missing:
        what = "column" if len(missing) == 1 else "columns"
        present = [str(c)[:40] for c in frame.columns[:20]] + (["..."] if len(frame.columns) > 20 else [])
        raise DataError(f"{where}: {what} {', '.join(missing)} not found; columns are {present}")


class Problems:
    """What is wrong with a data file, collected so that one error lists all of it."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.found: list[str] = []

    def add(self, message: str) -> None:
        self.found.append(message)

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise DataError(f"{self.where}: {self.found[0]}")
        if self.found:
            listed = "; ".join(f"({i}) {message}" for i, message in enumerate(self.found, 1))
            raise DataError(f"{self.where}: {len(self.found)} problems: {listed}")


def _rows(mask: pd.Series, shown: int = 5) -> str:
    """``rows 3, 17, 42 and 5 more``: data rows counted from 0 after the header, as plain integers."""
    rows = [int(row) for row in mask.index[mask.to_numpy()]]
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:shown]))}{more}"


def _empty_or_missing(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    non_string = ~values.map(lambda v: isinstance(v, str))
    empty = ~non_string & (values.where(~non_string, "x").str.strip() == "")
    return non_string, empty


def _without_empty_texts(frame: pd.DataFrame, column: str, where: str) -> pd.DataFrame:
    """``data.drop_empty_texts=true``: rows without text are dropped, and the user is told how many."""
    non_string, empty = _empty_or_missing(frame[column])
    dropped = non_string | empty
    if dropped.any():
        warn(f"{where}: dropped {int(dropped.sum())} rows with an empty or missing text ({_rows(dropped)})")
    return frame[~dropped]


def _validated_texts(frame: pd.DataFrame, column: str, problems: Problems) -> np.ndarray:
    values = frame[column]
    non_string, empty = _empty_or_missing(values)
    if non_string.any():
        problems.add(
            f"text column {column!r} has {int(non_string.sum())} non-string values ({_rows(non_string)}); "
            "drop those rows with data.drop_empty_texts=true"
        )
    if empty.any():
        problems.add(
            f"text column {column!r} has {int(empty.sum())} empty texts ({_rows(empty)}); "
            "drop them with data.drop_empty_texts=true"
        )
    return values.to_numpy(dtype=object)


def _validated_ids(frame: pd.DataFrame, column: str | None, problems: Problems) -> np.ndarray:
    if not column:
        return np.array([str(i) for i in range(len(frame))], dtype=object)
    ids = frame[column].astype(str)
    unusable = ids.map(_unusable_id)
    if unusable.any():
        first = ids[unusable].iloc[0]
        problems.add(
            f"id column {column!r} has {int(unusable.sum())} IDs that are empty or hold control "
            f"characters or outer spaces ({_rows(unusable)}, e.g. {first!r}); IDs are written "
            "one per line in the split lists"
        )
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        examples = sorted(set(duplicated))[:3]
        problems.add(f"id column {column!r} has {duplicated.nunique()} duplicate IDs (e.g. {examples})")
    return ids.to_numpy(dtype=object)


def _unusable_id(value: str) -> bool:
    """An ID that cannot be one line of a split list: empty, with outer spaces or a control
    character (a newline, tab, NUL, ...)."""
    return not value or value != value.strip() or any(unicodedata.category(c).startswith("C") for c in value)


def _binary_column(
    frame: pd.DataFrame, column: str, where: str, problems: Problems | None = None
) -> np.ndarray:
    values = frame[column]
    is_true = values.isin(_TRUE)
    bad = ~(is_true | values.isin(_FALSE))
    if bad.any():
        examples = sorted({str(v) for v in values[bad]})[:5]
        message = (
            f"label column {column!r} has {int(bad.sum())} values outside {{0, 1}}: {examples} ({_rows(bad)})"
        )
        if problems is None:
            raise DataError(f"{where}: {message}")
        problems.add(message)
    return is_true.to_numpy().astype(np.int64)


def scheme_of(spec: DataSpec) -> LabelScheme:
    """The label scheme the data settings describe (``data.scheme`` and its labels): no file is read."""
    kind = spec.scheme
    primary = spec.primary_label or ""
    if kind == "multilabel":
        labels = list(spec.label_columns)
        if not labels:
            raise ConfigError(
                "data.label_columns is empty: a multilabel scheme needs at least one label column"
            )
        if primary and primary not in labels + [spec.none_label]:
            raise ConfigError(f"data.primary_label={primary!r} is not one of data.label_columns {labels}")
        return MultiLabelScheme(labels, spec.none_label, primary)
    if kind == "levels":
        levels = list(spec.levels or [])
        if len(levels) < 2:
            raise ConfigError("data.levels must list at least two levels, lowest first")
        if primary and primary not in levels:
            raise ConfigError(f"data.primary_label={primary!r} is not one of data.levels {levels}")
        return LevelsScheme(levels, primary)
    raise ConfigError(f"data.scheme={kind!r} is not a label scheme; expected 'multilabel' or 'levels'")


def encode_targets(frame: pd.DataFrame, spec: DataSpec, problems: Problems) -> tuple[LabelScheme, np.ndarray]:
    """The scheme named by ``data.scheme`` and the encoded targets (bad values go to ``problems``)."""
    scheme = scheme_of(spec)
    if isinstance(scheme, MultiLabelScheme):
        columns = [_binary_column(frame, c, problems.where, problems) for c in scheme.labels]
        return scheme, np.stack(columns, axis=1)
    assert isinstance(scheme, LevelsScheme)
    return scheme, _encode_levels(frame, spec, scheme.levels, problems)


def _encode_levels(frame: pd.DataFrame, spec: DataSpec, levels: list[str], problems: Problems) -> np.ndarray:
    """Level indices from rules over binary columns, binned scores, or a level column."""
    where = problems.where
    index = {level: i for i, level in enumerate(levels)}
    if spec.level_rules:
        return _levels_from_rules(frame, spec, index, where)
    if spec.score_column:
        return _levels_from_scores(frame, spec, levels, where)
    column = spec.label_column
    if not column:
        raise ConfigError("a levels scheme needs data.label_column, data.level_rules or data.score_column")
    raw = frame[column].astype(str)
    mapping = spec.level_values or {}
    names = raw.map(mapping) if mapping else raw
    unknown = ~names.isin(index)
    if unknown.any():
        examples = sorted(set(raw[unknown]))[:5]
        expected = sorted(mapping) if mapping else levels
        problems.add(
            f"label column {column!r} has {int(unknown.sum())} values outside the levels {expected}: "
            f"{examples} ({_rows(unknown)})"
        )
        return np.zeros(len(frame), dtype=np.int64)
    return names.map(index).to_numpy().astype(np.int64)


def _levels_from_rules(frame: pd.DataFrame, spec: DataSpec, index: dict[str, int], where: str) -> np.ndarray:
    default = spec.default_level or next(iter(index))
    if default not in index:
        raise ConfigError(f"data.default_level={default!r} is not one of data.levels {list(index)}")
    result = np.full(len(frame), index[default], dtype=np.int64)
    assigned = np.zeros(len(frame), dtype=bool)
    rules = spec.level_rules or {}
    for level, expression in rules.items():  # most severe first: the first matching rule wins
        if level not in index:
            raise ConfigError(f"data.level_rules has level {level!r}, not one of data.levels {list(index)}")
        key = f"data.level_rules.{level}"
        names = rule_columns(expression, key) & set(frame.columns)
        columns = {c: _binary_column(frame, c, where) for c in sorted(names)}
        matched = np.broadcast_to(evaluate_rule(expression, columns, key), (len(frame),))
        result[matched & ~assigned] = index[level]
        assigned |= matched
    return result


def _levels_from_scores(frame: pd.DataFrame, spec: DataSpec, levels: list[str], where: str) -> np.ndarray:
    column = spec.score_column
    bins = list(spec.level_bins or [])
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


def _given_splits(
    frame: pd.DataFrame, column: str, mapping: dict[str, str] | None, problems: Problems
) -> np.ndarray:
    mapping = mapping or {}
    raw = frame[column].astype(str)
    names = raw.map(lambda v: mapping.get(v, v))
    unknown = ~names.isin(SPLIT_NAMES)
    if unknown.any():
        examples = sorted(set(raw[unknown]))[:5]
        problems.add(
            f"split column {column!r} has {int(unknown.sum())} values {examples} that are not one of "
            f"{list(SPLIT_NAMES)} (map them with data.split_values or drop them with data.exclude_splits)"
        )
    return names.to_numpy(dtype=object)
