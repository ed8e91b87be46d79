"""The training loss by name: each term is one builder in ``LOSS_TERMS``, and ``model.loss_terms``
(``{hard: 1.0, kd: 0.5}``; null weight = the term's default) chooses which are summed.

Unset, a run sums every term whose inputs exist: ``hard`` (the labels) always, ``kd`` and ``hidden``
with a teacher (``teacher.run``), ``auxiliary`` with ``data.auxiliary`` tags. Adding a term is a
``LossTerm`` subclass and one builder registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError
from toxmod.models.base import TeacherTargets
from toxmod.models.transformer.losses import (
    AuxiliaryLoss,
    DistillationLoss,
    HardLabelLoss,
    HiddenStateLoss,
    LossTerm,
    WeightedLoss,
    checked_layer_map,
)
from toxmod.models.transformer.objectives import Objective
from toxmod.progress import console


@dataclass(frozen=True)
class LossInputs:
    """What the terms are built from: the scheme and its objective, the student's config (depth and
    width), the teacher's targets (None without distillation) and the auxiliary heads' targets."""

    scheme: LabelScheme
    objective: Objective
    model_config: Any
    teacher: TeacherTargets | None = None
    auxiliary_names: tuple[str, ...] = ()
    auxiliary_values: np.ndarray | None = None
    auxiliary_weight: float = 1.0

    @property
    def n_outputs(self) -> int:
        return len(self.scheme.output_names)


# name -> builder(inputs, weight or None for the default) -> the term, or None when its inputs are absent
TermBuilder = Callable[[LossInputs, float | None], LossTerm | None]
LOSS_TERMS: dict[str, TermBuilder] = {}


def register_loss_term(name: str) -> Callable[[TermBuilder], TermBuilder]:
    def register(builder: TermBuilder) -> TermBuilder:
        LOSS_TERMS[name] = builder
        return builder

    return register


@register_loss_term("hard")
def hard_term(inputs: LossInputs, weight: float | None) -> LossTerm:
    """The scheme's objective on the labels; by default ``alpha`` with a teacher, else 1."""
    default = inputs.teacher.alpha if inputs.teacher is not None else 1.0
    return HardLabelLoss(inputs.objective, default if weight is None else weight)


@register_loss_term("kd")
def kd_term(inputs: LossInputs, weight: float | None) -> LossTerm | None:
    """KL to the teacher's softened outputs; by default ``1 - alpha``."""
    teacher = inputs.teacher
    if teacher is None:
        return None
    default = 1.0 - teacher.alpha
    return DistillationLoss(
        inputs.scheme.kind, inputs.n_outputs, teacher.temperature, default if weight is None else weight
    )


@register_loss_term("hidden")
def hidden_term(inputs: LossInputs, weight: float | None) -> LossTerm | None:
    """Student layers pulled towards the teacher's (``distill=kd_hidden``); by default ``hidden_weight``."""
    hidden = inputs.teacher.hidden if inputs.teacher is not None else None
    if hidden is None:
        return None
    config = inputs.model_config
    pairs = checked_layer_map(hidden.layer_map, int(config.num_hidden_layers), hidden.layers)
    shown = ", ".join(f"{s}->{t}" for s, t in pairs)
    console.print(f"hidden-state distillation ({hidden.loss}), student->teacher layers: {shown}")
    width = int(hidden.values.shape[-1])
    term_weight = hidden.weight if weight is None else weight
    return HiddenStateLoss(pairs, hidden.layers, int(config.hidden_size), width, hidden.loss, term_weight)


@register_loss_term("auxiliary")
def auxiliary_term(inputs: LossInputs, weight: float | None) -> LossTerm | None:
    """BCE of the training-only tag heads; by default ``model.auxiliary_weight``."""
    if inputs.auxiliary_values is None:
        return None
    default = inputs.auxiliary_weight
    names, values = inputs.auxiliary_names, inputs.auxiliary_values
    return AuxiliaryLoss.from_train(names, inputs.n_outputs, values, default if weight is None else weight)


def check_loss_terms(terms: Mapping[str, float | None] | None) -> None:
    """``model.loss_terms`` names registered terms with weights >= 0 (or null), checked from config."""
    for name, weight in (terms or {}).items():
        if name not in LOSS_TERMS:
            raise ConfigError(f"model.loss_terms.{name}: no such loss term; terms are {sorted(LOSS_TERMS)}")
        if weight is not None and float(weight) < 0:
            raise ConfigError(f"model.loss_terms.{name}={weight}; expected a weight >= 0")


def build_loss(inputs: LossInputs, terms: Mapping[str, float | None] | None) -> WeightedLoss:
    """The weighted sum of ``terms`` (None: every registered term whose inputs exist). A term named
    explicitly whose inputs are absent (``kd`` without a teacher) is a one-line error."""
    check_loss_terms(terms)
    chosen = dict(terms) if terms else dict.fromkeys(LOSS_TERMS)
    built = []
    for name, weight in chosen.items():
        term = LOSS_TERMS[name](inputs, None if weight is None else float(weight))
        if term is None and terms:
            raise ConfigError(
                f"model.loss_terms.{name}: this run has no inputs for it (a teacher, auxiliary tags)"
            )
        if term is not None:
            built.append(term)
    return WeightedLoss(built)
