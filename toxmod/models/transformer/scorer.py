"""``TransformerScorer``: an encoder (``EncoderSpec``) fine-tuned by a ``FineTuneRecipe``, behind the
scoring interface.

``fit`` runs a Lightning fine-tune (``training.fine_tune``) and keeps what it returns;
``predict_scores`` scores length-sorted, per-batch padded inputs on the device of the hardware it was
placed on and returns per-label (sigmoid) or per-level (softmax) probabilities.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError
from toxmod.hardware import HardwareSettings
from toxmod.models.base import CheckpointVariant, FitContext, FitReport, Scorer
from toxmod.models.capabilities import LayerSource, OnDevice, Student
from toxmod.models.token_batches import load_tokenizer, scoring_batches
from toxmod.models.transformer.backbones import load_saved_classifier
from toxmod.models.transformer.encoder import EncoderSpec
from toxmod.models.transformer.losses import masked_mean
from toxmod.models.transformer.objectives import OBJECTIVES
from toxmod.models.transformer.recipe import FineTuneRecipe
from toxmod.models.transformer.training import check_fit_settings, fine_tune
from toxmod.progress import scoring_progress

ENCODER_KEYS = frozenset(f.name for f in dataclasses.fields(EncoderSpec))
RECIPE_KEYS = frozenset(f.name for f in dataclasses.fields(FineTuneRecipe))


class TransformerScorer(Scorer, OnDevice, LayerSource, Student):
    """A sequence classifier: the encoder it is built from and the recipe it is trained with."""

    kind = "transformer"
    neural_models = 1

    def __init__(self, encoder: EncoderSpec, recipe: FineTuneRecipe | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.recipe = recipe or FineTuneRecipe()
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = torch.device("cpu")

    def initialize(self, train_texts: Sequence[str], scheme: LabelScheme) -> TransformerScorer:
        """The tokenizer and a freshly headed, untrained model (speed does not depend on the weights)."""
        source = self.encoder.weight_source()
        self.tokenizer = self.encoder.build_tokenizer(train_texts, source)
        self.model = self.encoder.build_classifier(self.tokenizer, source, len(scheme.output_names)).eval()
        self.scheme = scheme
        return self

    # -- the scoring interface ------------------------------------------------------------------

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> TransformerScorer:
        context = context or FitContext()
        fitted = fine_tune(self.encoder, self.recipe, list(texts), np.asarray(targets), scheme, context)
        self.scheme = scheme
        self.model, self.tokenizer, self.fit_report = fitted.model, fitted.tokenizer, fitted.report
        self.fit_report.variants = [self._variant(kept) for kept in fitted.variants]
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.fit_report.metrics["model_trainable_parameters"] = float(trainable)
        self.place_on(context.hardware)
        return self

    def _variant(self, kept: Any) -> CheckpointVariant:
        """This fitted scorer with a kept checkpoint's network instead of the best one's."""
        other = copy.copy(self)
        other.model, other.fit_report = kept.model, FitReport(dict(self.fit_report.metrics))
        return CheckpointVariant(f"step-{kept.step}", kept.step, kept.monitored, other, kept.last)

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        assert self.scheme is not None and self.model is not None, "predict_scores() before fit()/load()"
        objective = OBJECTIVES[self.scheme.kind](self.scheme)
        batches = scoring_batches(self.tokenizer, texts, self.encoder.max_length, self.recipe.eval_batch_size)
        model = self.model.to(self.device).eval()
        scores = np.empty((len(texts), len(self.scheme.output_names)), dtype=np.float64)
        with torch.inference_mode(), scoring_progress(len(texts), show=len(batches) > 20) as advance:
            for rows, input_ids, attention_mask in batches:
                logits = model(
                    input_ids=torch.from_numpy(input_ids).to(self.device),
                    attention_mask=torch.from_numpy(attention_mask).to(self.device),
                ).logits
                scores[rows] = objective.scores(logits).cpu().numpy()
                advance(len(rows))
        return scores

    @property
    def encoder_layers(self) -> int:
        return int(self.model.config.num_hidden_layers) if self.model is not None else 0

    def layer_representations(self, texts: Sequence[str], layers: Sequence[int]) -> np.ndarray:
        batches = scoring_batches(self.tokenizer, texts, self.encoder.max_length, self.recipe.eval_batch_size)
        model = self.model.to(self.device).eval()
        out = np.empty((len(texts), len(layers), int(model.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode(), scoring_progress(len(texts), show=len(batches) > 20) as advance:
            for rows, input_ids, attention_mask in batches:
                mask = torch.from_numpy(attention_mask).to(self.device)
                states = model(
                    input_ids=torch.from_numpy(input_ids).to(self.device),
                    attention_mask=mask,
                    output_hidden_states=True,
                ).hidden_states
                pooled = [masked_mean(states[layer].float(), mask) for layer in layers]
                out[rows] = torch.stack(pooled, dim=1).cpu().numpy()
                advance(len(rows))
        return out

    def check_settings(self, scheme: LabelScheme, context: FitContext) -> None:
        """Trainer, optimizer, schedule and monitor settings, and that the weights can be found."""
        check_fit_settings(self.recipe, scheme, context)
        self.encoder.weight_source()

    def place_on(self, hardware: HardwareSettings) -> None:
        """Score on the resolved accelerator (cuda, mps), else the CPU: only where ``hardware`` says."""
        self.device = torch.device(hardware.accelerator if hardware.accelerator in ("cuda", "mps") else "cpu")

    @property
    def parameter_count(self) -> int | None:
        return sum(p.numel() for p in self.model.parameters()) if self.model is not None else None

    # -- persistence ----------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """What scoring a saved model needs (the weights and tokenizer are files beside it)."""
        return {
            "encoder": {"pooling": self.encoder.pooling, "max_length": self.encoder.max_length},
            "recipe": {"eval_batch_size": self.recipe.eval_batch_size, "seed": self.recipe.seed},
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TransformerScorer:
        if params and not {"encoder", "recipe"} & set(params):  # a model saved with flat settings
            params = {
                "encoder": {k: params[k] for k in ("pooling", "max_length") if k in params},
                "recipe": {k: params[k] for k in ("eval_batch_size", "seed") if k in params},
            }
        unknown = sorted(set(params) - {"encoder", "recipe"})
        if unknown:
            raise ConfigError(
                f"transformer model parameters {unknown} are not known; expected encoder, recipe"
            )
        return cls(EncoderSpec(**params.get("encoder", {})), FineTuneRecipe(**params.get("recipe", {})))

    def _save_weights(self, directory: Path) -> None:
        if hasattr(self.model, "merge_and_unload"):  # LoRA: adapters folded into the weights they adapt
            self.model = self.model.merge_and_unload()
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        self.tokenizer = load_tokenizer(directory)
        self.model = load_saved_classifier(directory).eval()


def transformer_scorer(**settings: Any) -> TransformerScorer:
    """A ``TransformerScorer`` from the flat ``model.*`` keys (the ``_target_`` of the model configs).

    Each key belongs to the encoder (weights, tokenizer, pooling, max_length) or to the recipe
    (batches, epochs, loss weights, optimizer, ...); an unknown key is a one-line error naming it.
    """
    unknown = sorted(set(settings) - ENCODER_KEYS - RECIPE_KEYS)
    if unknown:
        known = ", ".join(sorted(ENCODER_KEYS | RECIPE_KEYS))
        raise ConfigError(f"model.{unknown[0]} is not a transformer setting; settings are {known}")
    encoder = EncoderSpec.from_settings(**{k: v for k, v in settings.items() if k in ENCODER_KEYS})
    recipe = FineTuneRecipe(**{k: v for k, v in settings.items() if k in RECIPE_KEYS})
    return TransformerScorer(encoder, recipe)
