"""Which rows a fine-tune trains on: a seeded subsample of the train split, the teacher's rows cut to
match, unlabeled transfer-set rows after them, and the auxiliary tags' targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toxmod.models.base import FitContext, TeacherTargets
from toxmod.models.transformer.recipe import FineTuneRecipe
from toxmod.progress import console


@dataclass(frozen=True)
class TeacherRows:
    """A teacher's per-row arrays cut into the train rows' part (subsampled with the train rows) and
    the part for the extra, unlabeled transfer-set texts (always kept)."""

    train: tuple[np.ndarray | None, np.ndarray | None]
    extra: tuple[np.ndarray | None, np.ndarray | None]
    extra_texts: tuple[str, ...]

    @classmethod
    def split(cls, teacher: TeacherTargets | None, n_train: int) -> TeacherRows:
        if teacher is None:
            return cls((None, None), (None, None), ())
        expected = n_train + len(teacher.extra_texts)
        hidden = None if teacher.hidden is None else teacher.hidden.values
        for name, rows in (("logit", teacher.logits), ("hidden-state", hidden)):
            if rows is not None and len(rows) != expected:
                raise ValueError(f"{len(rows)} teacher {name} rows for {expected} transfer-set texts")
        return cls(
            (teacher.logits[:n_train], None if hidden is None else hidden[:n_train]),
            (teacher.logits[n_train:], None if hidden is None else hidden[n_train:]),
            tuple(teacher.extra_texts),
        )


def pad_rows(values: np.ndarray, extra: int) -> np.ndarray:
    """``values`` with ``extra`` zero rows after it (placeholders for unlabeled texts, masked in the loss)."""
    values = np.asarray(values)
    if not extra:
        return values
    return np.concatenate([values, np.zeros((extra, *values.shape[1:]), dtype=values.dtype)])


def train_subsample(
    texts: list[str],
    targets: np.ndarray,
    max_rows: int | None,
    seed: int,
    *aligned: np.ndarray | None,
) -> tuple[Any, ...]:
    """A seeded random subset of the train split (``model.max_train_rows``), e.g. for CPU budgets.

    Texts, targets and the ``aligned`` per-row arrays (auxiliary targets, teacher logits; None
    passes through) stay row-aligned: ``(texts, targets, *aligned)``. The split itself (and its hash)
    is unchanged, so the run still compares with full-data runs on the same valid/calib/holdout;
    ``train/rows_used`` records what was trained on.
    """
    if not max_rows or max_rows >= len(texts):
        return (texts, targets, *aligned)
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), int(max_rows), replace=False))
    picked = [None if rows is None else np.asarray(rows)[chosen] for rows in aligned]
    return ([texts[i] for i in chosen], np.asarray(targets)[chosen], *picked)


def auxiliary_targets(
    recipe: FineTuneRecipe, context: FitContext, n_rows: int
) -> tuple[list[str], np.ndarray | None]:
    """The auxiliary tags to train heads on (none when absent or ``model.auxiliary_weight=0``)."""
    auxiliary = context.auxiliary
    if auxiliary is None or not auxiliary.names or not recipe.auxiliary_weight:
        return [], None
    if len(auxiliary) != n_rows:
        raise ValueError(f"{len(auxiliary)} auxiliary target rows for {n_rows} train texts")
    console.print(f"auxiliary heads (training only): {len(auxiliary.names)} tags {auxiliary.names}")
    return list(auxiliary.names), auxiliary.values
