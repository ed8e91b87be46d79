"""The ``data`` group: which file, which columns, and how its labels become the label scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class DataSpec(Spec):
    """A labelled data file and how to read it (``conf/data/_defaults.yaml`` says what each key means)."""

    GROUP = "data"

    name: str | None = setting()  # null: the file's name
    path: str | None = setting(job=False)  # a resumed run checks the same rows by the split hash
    text_column: str = setting()
    drop_empty_texts: bool = setting()
    id_column: str | None = setting()
    scheme: str = setting()
    label_columns: tuple[str, ...] = setting()
    none_label: str | None = setting()
    primary_label: str | None = setting()
    levels: tuple[str, ...] | None = setting()
    label_column: str | None = setting()
    level_values: dict[str, str] | None = setting()
    level_rules: dict[str, str] | None = setting()
    default_level: str | None = setting()
    score_column: str | None = setting()
    level_bins: tuple[float, ...] | None = setting()
    split_column: str | None = setting()
    split_values: dict[str, str] | None = setting()
    exclude_splits: tuple[str, ...] = setting()
    split_carve: dict[str, Any] | None = setting()
    group_column: str | None = setting()
    on_leak: str = setting()
    auxiliary: dict[str, Any] | None = setting()
    label_descriptions: dict[str, str] | None = setting()
    max_rows: int | None = setting(low=1)
    seed: int = setting()
