"""The ``evaluation`` group: what is measured beyond one holdout number (slices, bias metrics)."""

from __future__ import annotations

from dataclasses import dataclass

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class EvaluationSpec(Spec):
    """Slice columns and edges, identity columns, and the smallest sizes a number is shown for."""

    GROUP = "evaluation"

    slices: tuple[str, ...] = setting()  # columns (or text_length) whose values each get their metrics
    slice_edges: dict[str, tuple[float, ...]] | None = setting()  # numeric columns bucketed by edges
    min_slice_positives: int = setting(low=1)
    min_slice_negatives: int = setting(low=1)
    max_slices: int = setting(low=1)
    worst_slices: int = setting(low=0)
    identities: tuple[str, ...] = setting()  # identity columns or patterns (identity_*)
    min_identity_examples: int = setting(low=1)
    bias_decision: str | None = setting()  # null: the primary decision
