"""Unlabeled texts from outside the split -- another data config's rows or a text/table file -- with
every text of the run's valid/calib/holdout removed (and the count kept), so no evaluation text is
ever trained on. DAPT (``pretrain.corpus``) and distillation (``distill.transfer``) read them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from toxmod.config import group_option, group_options, spec_of
from toxmod.data import build_dataset
from toxmod.data.datasets import LabeledDataset
from toxmod.data.readers import read_table
from toxmod.data.text import normalize_text
from toxmod.errors import ConfigError, DataError
from toxmod.spec import DataSpec
from toxmod.splits import Split

TRAIN_SPLIT = "train"
EVALUATION_PARTS = ("valid", "calib", "holdout")


def outside_texts(
    source: str,
    cfg: DictConfig,
    config_name: str,
    dataset: LabeledDataset,
    split: Split,
    key: str,
    text_column: str = "text",
) -> tuple[list[str], dict[str, Any]]:
    """The texts of ``source`` (a data config name or a file) minus the split's evaluation texts.

    ``key`` names the setting in errors (``pretrain.corpus``); the record says where the texts came
    from, how many were kept and how many were removed for being in valid/calib/holdout.
    """
    path = Path(source).expanduser()
    if source in group_options("data") and not path.is_file():
        other = build_dataset(spec_of(DataSpec, group_option(cfg, config_name, "data", source)))
        texts, origin = [str(t) for t in other.texts if str(t).strip()], f"data={source} (all rows)"
    else:
        texts, origin = read_corpus(path, text_column, key), source
    held_out = {t for part in EVALUATION_PARTS for t in split.part(dataset, part).normalized_texts}
    kept = [t for t in texts if normalize_text(t) not in held_out]
    return kept, {"corpus": origin, "texts": len(kept), "removed": len(texts) - len(kept)}


def read_corpus(path: Path, text_column: str, key: str) -> list[str]:
    """Non-empty texts of a ``.txt`` (one per line) or a table's ``text_column``."""
    if not path.is_file():
        raise ConfigError(
            f"{key}={path}: no such file (use a data config ({', '.join(group_options('data'))}), "
            "a .txt or a table)"
        )
    if path.suffix == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        frame = read_table(path)
        if text_column not in frame.columns:
            raise DataError(f"{path}: no column {text_column!r} (the text column of {key})")
        texts = frame[text_column].tolist()
    texts = [t for t in texts if str(t).strip()]
    if not texts:
        raise DataError(f"{path}: the corpus has no non-empty texts")
    return texts
