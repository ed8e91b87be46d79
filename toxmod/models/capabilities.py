"""What a model may do beyond the required ``Scorer`` interface, each opted into by inheriting it.

A stage asks with ``isinstance`` (or the helpers below) and does without when a model lacks one, so a
new model kind implements only ``Scorer``'s four abstract methods and ``kind``.

=======================  ==========================================  ==============================
capability               what the stages do with it                  shipped models
=======================  ==========================================  ==============================
``OnDevice``             move scoring to ``hardware`` (cuda, mps)    transformer, LLM, ONNX
``BuiltFromRuns``        load finished runs and hand them over       ensemble, ONNX export
``LayerSource``          hidden states for ``distill=kd_hidden``     transformer (and wrappers)
``Student``              fit reads ``FitContext.teacher``            transformer
``ScoringReports``       numbers about scoring (tokens, parses)      LLM
``OutOfFoldFromRuns``    combine members' out-of-fold scores         ensemble
=======================  ==========================================  ==============================

Resuming is the fit's own business (``FitContext.resume_from``), export is ``BuiltFromRuns`` plus an
ONNX model, so neither needs a capability of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from toxmod.hardware import HardwareSettings

if TYPE_CHECKING:
    from toxmod.models.base import Scorer


class OnDevice(ABC):
    """A model that scores on one device chosen at run time."""

    @abstractmethod
    def place_on(self, hardware: HardwareSettings) -> None:
        """Score on ``hardware`` from now on."""


class BuiltFromRuns(ABC):
    """A model built from other finished runs' models (an ensemble's members, an export's source)."""

    @abstractmethod
    def member_runs(self) -> list[str]:
        """The runs the train stage loads (checking each shares this run's split) before ``fit``."""

    @abstractmethod
    def attach_members(self, members: Sequence[Scorer]) -> None:
        """Receive the loaded models of ``member_runs``, in that order."""

    def member_checkpoint(self) -> str | None:
        """A checkpoint the member runs kept to load instead of their best (an export's ``step-<n>``)."""
        return None


class LayerSource(ABC):
    """A model whose layer representations a student can match (``distill=kd_hidden``)."""

    @property
    @abstractmethod
    def encoder_layers(self) -> int:
        """Encoder layers ``layer_representations`` can give (0: none, e.g. a wrapper of a classic)."""

    @abstractmethod
    def layer_representations(self, texts: Sequence[str], layers: Sequence[int]) -> np.ndarray:
        """``(len(texts), len(layers), width)``: each layer's hidden states averaged over each text's
        real tokens (layer 0 = embeddings, 1 = the first encoder layer)."""


class OutOfFoldFromRuns(ABC):
    """A model built from runs whose out-of-fold train scores are its members' combined (an ensemble
    of cross-fitted runs): it is cross-fitted without fitting anything again."""

    @abstractmethod
    def attach_out_of_fold(self, scores: Sequence[np.ndarray]) -> None:
        """Receive each member run's out-of-fold train scores (all on the same folds), in order."""

    @abstractmethod
    def out_of_fold_scores(self) -> np.ndarray | None:
        """This fitted model's out-of-fold train scores (None: its members have none)."""


class Student:
    """A model whose ``fit`` learns from ``FitContext.teacher`` (knowledge distillation)."""


class ScoringReports(ABC):
    """A model with numbers about its scoring (an LLM's prompt tokens and parse failures) and a
    smaller latency sample (seconds per text)."""

    @abstractmethod
    def take_scoring_report(self) -> dict[str, float]:
        """Numbers about the scoring done since the last call; counting starts again."""

    @property
    def latency_texts(self) -> int | None:
        """At most this many texts for the run's latency measurement (None: the configured count)."""
        return None


def place(scorer: object, hardware: HardwareSettings) -> None:
    """Move ``scorer`` to ``hardware`` if it runs on a device (others score where they are)."""
    if isinstance(scorer, OnDevice):
        scorer.place_on(hardware)


def encoder_layers(scorer: object) -> int:
    """How many layers ``scorer`` can give a hidden-state student (0: none)."""
    return scorer.encoder_layers if isinstance(scorer, LayerSource) else 0


def scoring_report(scorer: object) -> dict[str, float]:
    """The model's numbers about the scoring since the last call (empty for most models)."""
    return scorer.take_scoring_report() if isinstance(scorer, ScoringReports) else {}


def latency_limit(scorer: object) -> int | None:
    """At most this many texts for the latency measurement (None: the configured count)."""
    return scorer.latency_texts if isinstance(scorer, ScoringReports) else None
