"""``LLMScorer`` (kind ``llm``): a causal LM asked about every text, behind the one scoring interface.

Its ``fit`` trains nothing: it draws the few-shot exemplars (``prompt.shots``) from the train texts it
is given, so the train stage then scores calib, fits thresholds there, scores the holdout and records
the run like any other. Saved as ``scorer.json`` (backend, settings, prompt, label wording) plus
``exemplars.json``; the weights stay where the config points (a hub name, a local folder, a package).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text

from toxmod.config import settings_from
from toxmod.data.schemes import LabelScheme
from toxmod.errors import DamagedFileError
from toxmod.files import read_json
from toxmod.hardware import HardwareSettings
from toxmod.models.base import FitContext, Opening, Scorer
from toxmod.models.capabilities import OnDevice, ScoringReports
from toxmod.models.llm.backends import LLMBackend, ScoringStats, build_backend, opened_settings
from toxmod.models.llm.prompts import (
    Exemplar,
    PromptBuilder,
    PromptSettings,
    QuestionSet,
    draw_exemplars,
    question_set,
)
from toxmod.progress import scoring_progress, styled

EXEMPLARS_FILE = "exemplars.json"


class LLMScorer(Scorer, OnDevice, ScoringReports):
    """Per-label probabilities from a causal LM's answers to the prompt (``model.backend``)."""

    kind = "llm"
    opening_settings = ("base_url", "api_key_env", "pretrained")

    def __init__(
        self,
        backend: str = "hf",
        prompt: Mapping[str, Any] | None = None,
        label_descriptions: Mapping[str, str] | None = None,
        latency_texts: int = 16,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.backend_name = backend
        self.prompt_settings = dict(prompt or {})
        self.prompt = settings_from(PromptSettings, self.prompt_settings, "prompt")
        self.label_descriptions = dict(label_descriptions or {})
        self._latency_texts = int(latency_texts)
        self.settings = dict(settings)
        self.backend: LLMBackend = build_backend(backend, self.settings)
        self.exemplars: list[Exemplar] = []
        self.stats = ScoringStats()

    @classmethod
    def opened_params(cls, params: Mapping[str, Any], opening: Opening, where: Path) -> dict[str, Any]:
        """A saved LLM run records its server, key variable, weights and cache folder, and uses none
        of them unasked: the opener's cache, and what its backend's settings take from the opener
        (``backends.opened_settings``)."""
        params = dict(super().opened_params(params, opening, where))
        params["cache_dir"] = str(opening.cache_dir) if opening.cache_dir else None
        return opened_settings(params.get("backend", "hf"), params, opening, where)

    def params(self) -> dict[str, Any]:
        return {
            "backend": self.backend_name,
            "prompt": self.prompt_settings,
            "label_descriptions": self.label_descriptions,
            "latency_texts": self._latency_texts,
            **self.settings,
        }

    def fit_announcement(self, name: str, train_rows: int, dataset: str) -> Text:
        shots = self.prompt.shots
        what = f"{shots} exemplars from the {train_rows} train rows" if shots else "nothing (zero-shot)"
        return styled(name, f" ({self.backend_name}, prompt={self.prompt.name}) on {dataset}: fitting {what}")

    def check_settings(self, scheme: LabelScheme, context: FitContext) -> None:
        """The label wording fits the data, and the weights (or the API key) are there."""
        question_set(scheme, self.label_descriptions)
        self.backend.check()

    def place_on(self, hardware: HardwareSettings) -> None:
        self.backend.place_on(hardware.accelerator)

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> LLMScorer:
        self.scheme = scheme
        if context is not None:
            self.place_on(context.hardware)
        p = self.prompt
        self.exemplars = draw_exemplars(texts, targets, scheme, p.shots, p.seed, p.balanced)
        self.backend.forget_prompt()
        return self

    @property
    def questions(self) -> QuestionSet:
        assert self.scheme is not None
        return question_set(self.scheme, self.label_descriptions)

    @property
    def builder(self) -> PromptBuilder:
        return PromptBuilder(self.prompt, self.questions, self.exemplars)

    @property
    def prompt_sha256(self) -> str:
        return self.builder.sha256

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        if self.scheme is None:
            raise RuntimeError("predict_scores() called before fit()")
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.scheme.output_names)))
        builder = self.builder
        with scoring_progress(len(texts), show=len(texts) > 1) as advance:
            probabilities = self.backend.probabilities(builder, texts, self.stats, advance)
        return builder.questions.scores(probabilities)

    def take_scoring_report(self) -> dict[str, float]:
        """Numbers about the scoring since the last call (prompt tokens, truncation, latency at the
        configured batch, parse failures), then start counting again."""
        stats, self.stats = self.stats, ScoringStats()
        report: dict[str, float] = {}
        if stats.prompt_tokens:
            report["llm/prompt_tokens_mean"] = float(np.mean(stats.prompt_tokens))
            report["llm/prompt_tokens_max"] = float(max(stats.prompt_tokens))
        report["llm/truncated_texts"] = float(stats.truncated_texts)
        per_text = [1000.0 * seconds / n for n, seconds in stats.batch_seconds if n]
        if per_text:
            report["llm/batch_ms_per_text_mean"] = float(np.mean(per_text))
            report["llm/batch_ms_per_text_p50"] = float(statistics.median(per_text))
            report["llm/batch_ms_per_text_p95"] = float(np.percentile(per_text, 95))
        if self.backend.reports_parse_failures:
            report["llm/answers"] = float(stats.answers)
            report["llm/parse_failures"] = float(stats.parse_failures)
            report["llm/parse_failure_rate"] = stats.parse_failures / stats.answers if stats.answers else 0.0
            report["llm/requests"] = float(stats.requests)
            report["llm/retries"] = float(stats.retries)
            report["llm/cached_answers"] = float(stats.cached)
        return report

    @property
    def latency_texts(self) -> int | None:
        return self._latency_texts

    def run_tags(self) -> dict[str, str]:
        return {
            "prompt": self.prompt.name,
            "prompt_shots": str(self.prompt.shots),
            "prompt_sha256": self.prompt_sha256,
            "llm_backend": self.backend_name,
        }

    @property
    def parameter_count(self) -> int | None:
        return self.backend.parameter_count

    def size_bytes(self, directory: Path) -> int:
        return self.backend.size_bytes()

    def _save_weights(self, directory: Path) -> None:
        exemplars = [{"text": e.text, "target": e.target} for e in self.exemplars]
        (directory / EXEMPLARS_FILE).write_text(json.dumps(exemplars, indent=1) + "\n")

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        path = directory / EXEMPLARS_FILE
        stored = read_json(path)
        if not isinstance(stored, list) or not all(isinstance(e, dict) and "text" in e for e in stored):
            raise DamagedFileError(f"{path}: expected a list of {{text, target}} objects")
        self.exemplars = [Exemplar(str(e["text"]), e.get("target")) for e in stored]
