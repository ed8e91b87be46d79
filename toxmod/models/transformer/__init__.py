"""Transformer encoders fine-tuned with PyTorch Lightning, behind the ``Scorer`` interface."""

from toxmod.models.transformer.scorer import TransformerScorer

__all__ = ["TransformerScorer"]
