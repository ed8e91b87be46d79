"""Cross-fitting: every train text scored by a copy of the model that never saw it.

A model fitted on the train split scores its own train texts almost as their hard labels, so a
student learning from those scores learns the labels again. Cross-fitting splits the train rows into
K folds (stratified on the label scheme's keys, seeded); copy i is fitted on every fold but i and
scores fold i. The K out-of-fold score blocks together cover the train split once.

Each fold's scores are written as soon as they exist, under a folder whose name hashes everything
that decides them (the model's settings, the texts, the targets, the fold assignment), so a killed
cross-fit continues with the folds it has and a second run of the same model on the same folds reads
them. A run keeps its out-of-fold scores in ``crossfit/`` (``OutOfFold``): what a student's teacher
outputs and a stacked ensemble are built from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.files import file_sha256, read_json, require_keys
from toxmod.models.base import FitContext, Scorer

SCORES_FILE = "scores.npy"
FOLDS_FILE = "folds.npy"
RECORD_FILE = "crossfit.json"


def texts_sha256(texts: Sequence[str]) -> str:
    """SHA-256 over texts in order (each followed by a NUL byte)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def array_sha256(values: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    values = np.ascontiguousarray(values)
    digest = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode("ascii"))
    digest.update(values.tobytes())
    return digest.hexdigest()


def assign_folds(scheme: LabelScheme, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..K-1) of each train row: stratified on the scheme's keys (a label pattern too
    rare to spread over K folds is stratified on the primary decision alone), shuffled by ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    if len(targets) < folds:
        raise ConfigError(f"crossfit.folds={folds}: the train split has only {len(targets)} rows")
    keys = scheme.stratification_keys(np.asarray(targets))
    values, counts = np.unique(keys, return_counts=True)
    rare = set(values[counts < folds].tolist())
    if rare:
        primary = scheme.decision_targets(np.asarray(targets))[:, 0].astype(int)
        keys = np.array([f"~{p}" if k in rare else str(k) for k, p in zip(keys, primary)])
    assignment = np.empty(len(targets), dtype=np.int64)
    with warnings.catch_warnings():  # a class rarer than K is spread as far as it goes
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(keys)), keys)):
            assignment[held_out] = fold
    return assignment


def cross_fit_key(description: Any, texts_hash: str, targets: np.ndarray, assignment: np.ndarray) -> str:
    """What decides a cross-fit's scores: the model (``description``: its settings, JSON-able), the
    texts in order (``texts_hash``: their ``texts_sha256``), the targets and the fold assignment."""
    inputs = {
        "model": description,
        "texts_sha256": texts_hash,
        "targets_sha256": array_sha256(np.asarray(targets)),
        "folds_sha256": array_sha256(assignment),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def fold_context(context: FitContext | None, kept: Sequence[int], checkpoints: Path) -> FitContext | None:
    """The run's fit settings for a fold's copy fitted on the ``kept`` train rows: its trainer,
    validation, monitor, early stopping, hardware and those rows' auxiliary targets; its checkpoints
    in ``checkpoints`` (only the best); without the run's resume point, curves, callbacks or teacher."""
    if context is None:
        return None
    return FitContext(
        hardware=context.hardware,
        validation=context.validation,
        validation_metrics=context.validation_metrics,
        trainer=context.trainer,
        checkpoint=dataclasses.replace(
            context.checkpoint, top_k=1, keep_last=False, every_n_steps=None, log_best=False
        ),
        early_stopping=context.early_stopping,
        checkpoint_dir=checkpoints,
        auxiliary=context.auxiliary.subset(np.asarray(kept)) if context.auxiliary is not None else None,
    )


def cross_fit(
    fresh_model: Callable[[], Scorer],
    texts: Sequence[str],
    targets: np.ndarray,
    scheme: LabelScheme,
    assignment: np.ndarray,
    context: FitContext | None,
    store: Path,
    announce: Callable[[int, int, int], None] = lambda fold, folds, rows: None,
) -> tuple[np.ndarray, int]:
    """Out-of-fold scores of every train row and how many folds were fitted now (the others were read
    from ``store``). Fold i's copy (``fresh_model()``) is fitted on the rows of every other fold and
    scores only fold i's; each fold's block is saved to ``store/fold-<i>.npy`` when it is done."""
    targets = np.asarray(targets)
    folds = int(assignment.max()) + 1
    store.mkdir(parents=True, exist_ok=True)
    scores: np.ndarray | None = None
    fitted = 0
    for fold in range(folds):
        held_out = np.flatnonzero(assignment == fold).tolist()
        block = _saved_block(store / f"fold-{fold}.npy", len(held_out))
        if block is None:
            kept = np.flatnonzero(assignment != fold).tolist()
            announce(fold, folds, len(kept))
            checkpoints = store / f"fold-{fold}.checkpoints"
            shutil.rmtree(checkpoints, ignore_errors=True)
            context_now = fold_context(context, kept, checkpoints)
            model = fresh_model().fit([texts[i] for i in kept], targets[kept], scheme, context_now)
            block = np.asarray(model.predict_scores([texts[i] for i in held_out]), dtype=np.float64)
            _save_block(store / f"fold-{fold}.npy", block)
            shutil.rmtree(checkpoints, ignore_errors=True)  # the scores are what is kept
            fitted += 1
        if scores is None:
            scores = np.empty((len(texts), block.shape[1]), dtype=np.float64)
        scores[held_out] = block
    assert scores is not None
    return scores, fitted


def _saved_block(path: Path, rows: int) -> np.ndarray | None:
    """A fold's saved scores, or None when there are none (or they are not that fold's)."""
    if not path.is_file():
        return None
    try:
        block = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None
    return block if block.ndim == 2 and block.shape[0] == rows else None


def _save_block(path: Path, block: np.ndarray) -> None:
    staging = path.with_name(path.stem + ".partial.npy")
    np.save(staging, block, allow_pickle=False)
    os.replace(staging, path)  # a kill leaves the fold absent, never half written


@dataclass(frozen=True)
class OutOfFold:
    """A run's out-of-fold scores on its train split: ``scores[i]`` is train row i scored by a copy
    fitted without fold ``folds[i]``; ``texts_sha256`` names the train texts in order."""

    scores: np.ndarray
    folds: np.ndarray
    seed: int
    texts_sha256: str

    @property
    def k(self) -> int:
        return int(self.folds.max()) + 1

    @property
    def folds_sha256(self) -> str:
        return array_sha256(self.folds)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / SCORES_FILE, np.asarray(self.scores, dtype=np.float64), allow_pickle=False)
        np.save(directory / FOLDS_FILE, np.asarray(self.folds, dtype=np.int64), allow_pickle=False)
        record = {
            "folds": self.k,
            "seed": self.seed,
            "rows": len(self.folds),
            "texts_sha256": self.texts_sha256,
            "folds_sha256": self.folds_sha256,
            "scores_sha256": file_sha256(directory / SCORES_FILE),
        }
        (directory / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return directory

    @classmethod
    def read(cls, directory: Path) -> OutOfFold | None:
        """The out-of-fold scores saved in ``directory`` (None: the run has none)."""
        path = directory / RECORD_FILE
        if not path.is_file():
            return None
        record = read_json(path)
        require_keys(path, record, ("seed", "rows", "texts_sha256", "folds_sha256"))
        try:
            scores = np.load(directory / SCORES_FILE, allow_pickle=False)
            folds = np.load(directory / FOLDS_FILE, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DamagedFileError(f"{directory}: out-of-fold scores not readable ({error})") from None
        if scores.ndim != 2 or len(scores) != record["rows"] or len(folds) != record["rows"]:
            raise DamagedFileError(f"{path}: {record['rows']} rows recorded, the arrays disagree")
        loaded = cls(scores, folds, int(record["seed"]), str(record["texts_sha256"]))
        if loaded.folds_sha256 != record["folds_sha256"]:
            raise DamagedFileError(f"{directory / FOLDS_FILE}: not the fold assignment {path} records")
        return loaded

    def same_rows(self, other: OutOfFold) -> bool:
        """Whether ``other`` covers the same train texts with the same folds."""
        return self.texts_sha256 == other.texts_sha256 and self.folds_sha256 == other.folds_sha256
