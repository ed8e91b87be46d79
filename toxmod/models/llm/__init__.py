"""Causal LMs as classifiers: prompts as config, answers scored by log-likelihood (``hf``) or asked of an
OpenAI-compatible server (``openai_compat``), behind the one scoring interface."""

from toxmod.models.llm.scorer import LLMScorer

__all__ = ["LLMScorer"]
