"""The training loss as named, weighted terms: ``hard`` (the scheme's labels), ``auxiliary`` (training-only
tag heads), and whatever a recipe adds (distillation terms).

Each term computes its own unweighted mean loss from the model's output and the batch; ``WeightedLoss``
sums ``weight x term`` in one place and returns every term's value, so each is logged by name
(``train/loss/<name>``). A term that reads hidden states says so (``needs_hidden_states``), and only
then does the forward pass return them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from toxmod.data.schemes import MultiLabelScheme
from toxmod.errors import ConfigError
from toxmod.models.transformer.objectives import MultiLabelBCE, Objective, negatives_per_positive


@dataclass(frozen=True)
class ModelOutput:
    """One forward pass: every output's logits (the scheme's first, then auxiliary heads), the
    hidden states (embeddings first, then each layer) when asked for, and the attention mask."""

    logits: torch.Tensor
    attention_mask: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class LossTerm(ABC):
    """One named part of the training loss; ``weight`` scales it in the sum."""

    name: str
    needs_hidden_states: bool = False

    def __init__(self, weight: float = 1.0) -> None:
        if weight < 0:
            raise ConfigError(f"loss term {self.name!r}: weight {weight}; expected a weight >= 0")
        self.weight = float(weight)

    @abstractmethod
    def __call__(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The term's unweighted mean loss over the batch."""


class HardLabelLoss(LossTerm):
    """The scheme's objective (per-label BCE or cross-entropy over levels) on the true labels."""

    name = "hard"

    def __init__(self, objective: Objective, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.objective = objective

    def __call__(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits, targets = labelled_rows(batch, output.logits[:, : self.objective.n_outputs], batch["targets"])
        if not len(logits):
            return output.logits.sum() * 0.0  # a batch of transfer-set texts only: no labels to learn
        return self.objective.loss(logits, targets)


def labelled_rows(batch: Mapping[str, torch.Tensor], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The rows that carry labels: all of them, unless the batch marks unlabeled transfer-set texts
    (``batch["labelled"]``), which only the teacher's terms learn from."""
    if "labelled" not in batch:
        return tensors
    keep = batch["labelled"].bool().to(tensors[0].device)
    return tuple(t[keep] for t in tensors)


class AuxiliaryLoss(LossTerm):
    """Mean BCE of the training-only tag heads (``data.auxiliary``), whatever the scheme.

    The heads are the outputs after the scheme's own; ``pos_weight`` = negatives / positives on train.
    """

    name = "auxiliary"

    def __init__(
        self, names: Sequence[str], first_output: int, weight: float, pos_weight: np.ndarray | None = None
    ) -> None:
        if weight < 0:
            raise ConfigError(f"model.auxiliary_weight={weight}; expected a weight >= 0")
        super().__init__(weight)
        self.names = list(names)
        self.first_output = first_output
        self.bce = MultiLabelBCE(MultiLabelScheme(self.names), pos_weight)

    @classmethod
    def from_train(
        cls, names: Sequence[str], first_output: int, targets: np.ndarray, weight: float
    ) -> AuxiliaryLoss:
        """Heads for ``names`` with ``pos_weight`` from the train split's auxiliary targets."""
        return cls(names, first_output, weight, negatives_per_positive(targets))

    @property
    def pos_weight(self) -> torch.Tensor | None:
        return self.bce.weights

    def target_tensor(self, targets: np.ndarray) -> torch.Tensor:
        return self.bce.target_tensor(targets)

    def __call__(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits, targets = labelled_rows(batch, output.logits[:, self.first_output :], batch["auxiliary"])
        if not len(logits):
            return output.logits.sum() * 0.0
        return self.bce.loss(logits, targets)


class DistillationLoss(LossTerm):
    """Knowledge distillation from a teacher's (calibrated) logits, softened by ``temperature``.

    Multi-label: the mean over labels of the binary KL divergence between sigmoid(z_t / T) and
    sigmoid(z_s / T) -- each label is its own two-class distribution, which softmax KD (TextBrewer,
    torchdistill) cannot express. Levels: the KL divergence between the softmaxes over levels. Both
    are scaled by T^2 so the gradient's size does not shrink as T grows (Hinton et al., 2015); both
    are 0 when the student matches the teacher. The teacher's logits ride in ``batch["teacher"]``.
    """

    name = "kd"

    def __init__(self, scheme_kind: str, n_outputs: int, temperature: float, weight: float = 1.0) -> None:
        super().__init__(weight)
        if temperature <= 0:
            raise ConfigError(f"distill.temperature={temperature}; expected a temperature > 0")
        if scheme_kind not in KD_DIVERGENCES:
            raise ConfigError(f"no distillation loss for a {scheme_kind!r} scheme")
        self.divergence = KD_DIVERGENCES[scheme_kind]
        self.n_outputs = n_outputs
        self.temperature = float(temperature)

    def __call__(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        t = self.temperature
        student = output.logits[:, : self.n_outputs].float() / t
        teacher = batch["teacher"].float().to(student.device) / t
        return self.divergence(student, teacher) * t * t


def sigmoid_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean binary KL(sigmoid(teacher) || sigmoid(student)) over rows and labels."""
    p = torch.sigmoid(teacher)
    log_p, log_not_p = functional.logsigmoid(teacher), functional.logsigmoid(-teacher)
    log_q, log_not_q = functional.logsigmoid(student), functional.logsigmoid(-student)
    return (p * (log_p - log_q) + (1 - p) * (log_not_p - log_not_q)).mean()


def softmax_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(softmax(teacher) || softmax(student))."""
    return functional.kl_div(
        functional.log_softmax(student, dim=1),
        functional.log_softmax(teacher, dim=1),
        reduction="batchmean",
        log_target=True,
    )


KD_DIVERGENCES = {"multilabel": sigmoid_kl, "levels": softmax_kl}


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's mean over its real tokens, ``(rows, tokens, width) -> (rows, width)``: padding
    never enters a representation, so a text's vector does not depend on its batch."""
    mask = attention_mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def uniform_layer_map(student_layers: int, teacher_layers: Sequence[int]) -> list[tuple[int, int]]:
    """``(student layer, teacher layer)`` pairs, layers numbered from 1 (the first encoder layer).

    Student layer ``s`` of ``S`` takes the teacher layer at the same relative depth among
    ``teacher_layers`` (``ceil``-free: position ``max(1, s * T // S)``), so the last student layer
    always meets the last teacher layer, a shallower student skips teacher layers and a deeper one
    shares them -- any depth maps without an index error.
    """
    layers = sorted(teacher_layers)
    if student_layers < 1 or not layers:
        raise ConfigError(f"no layers to match: student {student_layers}, teacher {list(teacher_layers)}")
    count = len(layers)
    return [(s, layers[max(1, s * count // student_layers) - 1]) for s in range(1, student_layers + 1)]


def layer_map_pairs(
    layer_map: Sequence[Sequence[int]] | Mapping[int, int],
) -> list[tuple[int, int]]:
    """``distill.layer_map`` as ``(student layer, teacher layer)`` integer pairs (one-line error if not)."""
    pairs = layer_map.items() if isinstance(layer_map, Mapping) else layer_map
    try:
        return [(int(s), int(t)) for s, t in pairs]
    except (TypeError, ValueError):
        raise ConfigError(
            f"distill.layer_map={layer_map}: expected [[student layer, teacher layer], ...]"
        ) from None


def checked_layer_map(
    layer_map: Sequence[Sequence[int]] | Mapping[int, int] | None,
    student_layers: int,
    teacher_layers: Sequence[int],
) -> list[tuple[int, int]]:
    """``distill.layer_map`` (``[[student, teacher], ...]`` or ``{student: teacher}``; 0 = embeddings)
    checked against both depths, or the uniform map when it is not set."""
    if not layer_map:
        return uniform_layer_map(student_layers, teacher_layers)
    checked = layer_map_pairs(layer_map)
    for student, teacher in checked:
        if not 0 <= student <= student_layers:
            raise ConfigError(
                f"distill.layer_map: student layer {student} does not exist (the student has "
                f"{student_layers} layers; 0 = embeddings)"
            )
        if teacher not in teacher_layers:
            raise ConfigError(
                f"distill.layer_map: teacher layer {teacher} is not among the teacher's cached layers "
                f"{sorted(teacher_layers)}"
            )
    return checked


class HiddenStateLoss(LossTerm):
    """Match the student's layer representations to the teacher's (``distill=kd_hidden``).

    A representation is a layer's hidden states averaged over the text's real tokens (padding
    masked). Matching pooled states rather than token by token lets a student with its own WordPiece
    vocabulary learn from a teacher with another tokenizer. Each ``(student layer, teacher layer)``
    pair compares ``projection(student)`` with the teacher's cached vector (``batch["teacher_hidden"]``,
    one column per entry of ``teacher_layers``) by ``mse`` or ``cosine``
    (1 - cosine similarity); the term is the mean over pairs. ``projection`` is a learned linear map
    when the widths differ (trained with the student, discarded after), else the identity.
    """

    name = "hidden"
    needs_hidden_states = True
    LOSSES = ("mse", "cosine")

    def __init__(
        self,
        pairs: Sequence[tuple[int, int]],
        teacher_layers: Sequence[int],
        student_width: int,
        teacher_width: int,
        loss: str = "mse",
        weight: float = 1.0,
    ) -> None:
        super().__init__(weight)
        if loss not in self.LOSSES:
            raise ConfigError(f"distill.hidden_loss={loss}: expected one of {list(self.LOSSES)}")
        self.pairs = list(pairs)
        self.columns = [(student, list(teacher_layers).index(teacher)) for student, teacher in self.pairs]
        self.loss = loss
        same_width = student_width == teacher_width
        self.projection: torch.nn.Module = (
            torch.nn.Identity() if same_width else torch.nn.Linear(student_width, teacher_width)
        )

    @property
    def module(self) -> torch.nn.Module:
        return self.projection

    def __call__(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if output.hidden_states is None:
            raise ValueError("the hidden-state loss needs the forward pass's hidden states")
        teacher = batch["teacher_hidden"].float().to(output.logits.device)
        values = []
        for student_layer, column in self.columns:
            pooled = masked_mean(output.hidden_states[student_layer].float(), output.attention_mask)
            values.append(self._distance(self.projection(pooled), teacher[:, column]))
        return torch.stack(values).mean()

    def _distance(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.loss == "cosine":
            return (1.0 - functional.cosine_similarity(student, teacher, dim=-1)).mean()
        return functional.mse_loss(student, teacher)


class WeightedLoss:
    """The training loss: ``sum(weight x term)`` over named terms, with each term's value kept."""

    def __init__(self, terms: Sequence[LossTerm]) -> None:
        names = [term.name for term in terms]
        if not terms or len(set(names)) != len(names):
            raise ValueError(f"loss terms must be non-empty with unique names, got {names}")
        self.terms = list(terms)

    @property
    def needs_hidden_states(self) -> bool:
        return any(term.needs_hidden_states for term in self.terms)

    def modules(self) -> list[torch.nn.Module]:
        """Trainable parts of the terms (e.g. a hidden-state projection): the module trains and
        checkpoints them with the model."""
        found = [getattr(term, "module", None) for term in self.terms]
        return [module for module in found if isinstance(module, torch.nn.Module)]

    def __call__(
        self, output: ModelOutput, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and ``{term name: unweighted value}``."""
        values = {term.name: term(output, batch) for term in self.terms}
        weighted = [term.weight * values[term.name] for term in self.terms]
        total = weighted[0]
        for value in weighted[1:]:  # summed in term order
            total = total + value
        return total, values
