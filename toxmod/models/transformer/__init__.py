"""Transformer encoders fine-tuned with PyTorch Lightning, behind the ``Scorer`` interface."""

from toxmod.models.transformer.encoder import EncoderSpec
from toxmod.models.transformer.recipe import FineTuneRecipe
from toxmod.models.transformer.scorer import TransformerScorer, transformer_scorer

__all__ = ["EncoderSpec", "FineTuneRecipe", "TransformerScorer", "transformer_scorer"]
