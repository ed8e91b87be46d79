"""What an LLM backend is (``LLMBackend``), the registry of backends, and what scoring measured."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from toxmod.config import settings_from
from toxmod.errors import ConfigError
from toxmod.models.llm.prompts import PromptBuilder


@dataclass
class ScoringStats:
    """What scoring measured since it was last read: prompt lengths in tokens, texts cut to fit the
    context, seconds per batch, and (``openai_compat``) requests, retries, cached answers and answers
    that could not be parsed."""

    prompt_tokens: list[int] = field(default_factory=list)
    truncated_texts: int = 0
    batch_seconds: list[tuple[int, float]] = field(default_factory=list)  # (texts, seconds)
    requests: int = 0
    retries: int = 0
    cached: int = 0
    answers: int = 0
    parse_failures: int = 0


def normalised(logprobs: np.ndarray) -> np.ndarray:
    """Answer log-likelihoods -> probabilities over the answers (a softmax along the last axis)."""
    shifted = logprobs - logprobs.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


class LLMBackend(Protocol):
    """Turns prompts about texts into probabilities over each question's answer words."""

    name: str
    reports_parse_failures: bool  # answers are parsed text, so parse failures are a metric

    def probabilities(
        self,
        builder: PromptBuilder,
        texts: Sequence[str],
        stats: ScoringStats,
        progress: Callable[[int], None],
    ) -> list[np.ndarray]: ...

    def check(self) -> None:
        """Refuse what cannot work before any data is read (weights not found, API key not set)."""

    def place_on(self, accelerator: str) -> None: ...

    def size_bytes(self) -> int: ...

    def forget_prompt(self) -> None: ...

    @property
    def parameter_count(self) -> int | None: ...


# name -> ("module:Backend", "module:Settings"), imported when used (hf needs torch, openai_compat not).
LLM_BACKENDS: dict[str, tuple[str, str]] = {
    "hf": ("toxmod.models.llm.hf:HFBackend", "toxmod.models.llm.hf:HFSettings"),
    "openai_compat": (
        "toxmod.models.llm.openai_compat:OpenAICompatBackend",
        "toxmod.models.llm.openai_compat:OpenAICompatSettings",
    ),
}


def _load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def opened_settings(name: str, params: dict[str, Any], opening: Any, where: Any) -> dict[str, Any]:
    """A saved LLM run's ``params`` with what only its opener chooses (a server, a key variable, a
    weights folder) taken from ``opening``: each backend's settings class says which (``opened``)."""
    if name not in LLM_BACKENDS:
        raise ConfigError(f"model.backend={name!r}; expected one of {sorted(LLM_BACKENDS)}")
    given = {k: v for k, v in opening.settings.items() if v is not None}
    return _load(LLM_BACKENDS[name][1]).opened(params, given, opening, where)


def build_backend(name: str, settings: Mapping[str, Any]) -> LLMBackend:
    """The backend ``model.backend`` names, from its settings; an unknown key is a one-line error."""
    if name not in LLM_BACKENDS:
        raise ConfigError(f"model.backend={name!r}; expected one of {sorted(LLM_BACKENDS)}")
    backend_class, settings_class = (_load(path) for path in LLM_BACKENDS[name])
    return backend_class(settings_from(settings_class, settings, "model"))
