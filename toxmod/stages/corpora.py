"""Unlabeled texts from outside the split -- another data config's rows or a text/table file -- with
every text of the run's valid/calib/holdout removed (and the count kept), so no evaluation text is
ever trained on. DAPT (``pretrain.corpus``) and distillation (``distill.transfer``) read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Corpus:
    """A source of outside texts made concrete when the command starts: a data config (composed
    once, before any data is read) or a text/table file that exists."""

    source: str  # as the config names it (``ruddit``, ``/data/unlabeled.txt``)
    data: DataSpec | None = None
    path: Path | None = None


def corpus_of(source: str, cfg: DictConfig, config_name: str, key: str) -> Corpus:
    """``source`` (``key`` names the setting in errors, e.g. ``pretrain.corpus``): a data config name
    composed with this command's paths, else a file that must exist (one line when it does not)."""
    path = Path(source).expanduser()
    if source in group_options("data") and not path.is_file():
        return Corpus(source, data=spec_of(DataSpec, group_option(cfg, config_name, "data", source)))
    if not path.is_file():
        raise ConfigError(
            f"{key}={path}: no such file (use a data config ({', '.join(group_options('data'))}), "
            "a .txt or a table)"
        )
    return Corpus(source, path=path)


def outside_texts(
    corpus: Corpus,
    dataset: LabeledDataset,
    split: Split,
    key: str,
    text_column: str = "text",
) -> tuple[list[str], dict[str, Any]]:
    """The texts of ``corpus`` minus the split's evaluation texts.

    ``key`` names the setting in errors (``pretrain.corpus``); the record says where the texts came
    from, how many were kept and how many were removed for being in valid/calib/holdout.
    """
    if corpus.data is not None:
        other = build_dataset(corpus.data)
        texts, origin = [str(t) for t in other.texts if str(t).strip()], f"data={corpus.source} (all rows)"
    else:
        assert corpus.path is not None
        texts, origin = read_corpus(corpus.path, text_column, key), corpus.source
    held_out = {t for part in EVALUATION_PARTS for t in split.part(dataset, part).normalized_texts}
    kept = [t for t in texts if normalize_text(t) not in held_out]
    return kept, {"corpus": origin, "texts": len(kept), "removed": len(texts) - len(kept)}


def read_corpus(path: Path, text_column: str, key: str) -> list[str]:
    """Non-empty texts of a ``.txt`` (one per line) or a table's ``text_column``."""
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
