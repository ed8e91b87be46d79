"""What an encoder is: where its weights come from, its tokenizer, its pooling and its token limit.

One ``EncoderSpec`` builds the tokenizer and the network for fine-tuning (a classifier) and for DAPT
(a masked LM), so both read the same ``model.*`` settings and neither needs the other's objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from toxmod.errors import ConfigError, require_positive_int
from toxmod.models.token_batches import load_tokenizer
from toxmod.models.transformer.backbones import StudentArchitecture, build_classifier, resolve_pretrained
from toxmod.models.transformer.tokenization import train_wordpiece_tokenizer

MIN_MAX_LENGTH = 8  # [CLS] + a few tokens + [SEP]
POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class EncoderSpec:
    """Exactly one weight source: ``init_from`` (e.g. a DAPT output), else ``student`` (a from-scratch
    BERT whose WordPiece tokenizer learns the train split), else ``pretrained`` (a local directory or
    hub name) / ``package`` (an installed weights package, the offline path)."""

    pretrained: str | None = None
    package: str | None = None
    init_from: str | None = None
    student: StudentArchitecture | None = None
    tokenizer: Mapping[str, Any] = field(default_factory=dict)  # WordPiece settings (students)
    pooling: str = "cls"
    max_length: int = 128
    gguf_package: str | None = None  # the weights of gguf_package_model as a GGUF file in a pip package
    gguf_package_model: str | None = None  # (LLMs; converted once into cache_dir, see models/llm/hf.py)
    cache_dir: str | None = None  # where that conversion is kept
    lora: Mapping[str, Any] | None = None  # PEFT LoRA: train adapters (+ the head), not the weights

    def __post_init__(self) -> None:
        require_positive_int("model.max_length", self.max_length)
        if self.lora is not None:
            lora_settings(self.lora)
        if self.max_length < MIN_MAX_LENGTH:
            raise ConfigError(f"model.max_length={self.max_length}: at least {MIN_MAX_LENGTH} tokens")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={self.pooling!r}; expected cls or mean")

    @classmethod
    def from_settings(
        cls, student: Mapping[str, Any] | StudentArchitecture | None = None, **settings: Any
    ) -> EncoderSpec:
        """From ``model.*`` values; ``student`` may be the ``student`` group's mapping."""
        if isinstance(student, Mapping):
            return cls(student=StudentArchitecture(**student) if student else None, **settings)
        return cls(student=student or None, **settings)

    @property
    def architecture(self) -> StudentArchitecture:
        """The student architecture (an error for an encoder with pretrained weights)."""
        if self.student is None:
            raise ConfigError("this encoder has pretrained weights, not a student architecture")
        return self.student

    def weight_source(self) -> str | None:
        """The local directory (or hub name) holding the initial weights; None for a student."""
        if self.init_from:
            return resolve_pretrained(self.init_from, key="model.init_from")
        if self.student is not None:
            return None
        if self.gguf_package:
            from toxmod.models.llm.hf import HFSettings
            from toxmod.models.llm.weights import resolve_llm_weights

            settings = HFSettings(
                self.pretrained,
                cache_dir=self.cache_dir,
                gguf_package=self.gguf_package,
                gguf_package_model=self.gguf_package_model,
            )
            return resolve_llm_weights(settings)
        return resolve_pretrained(self.pretrained, self.package)

    def build_tokenizer(self, train_texts: Sequence[str], source: str | None) -> Any:
        """The source's tokenizer, or for a student a WordPiece vocabulary learned from ``train_texts``."""
        if source is not None:
            return load_tokenizer(source)
        settings = {"vocab_size": self.architecture.vocab_size, **self.tokenizer}
        return train_wordpiece_tokenizer(train_texts, **settings)

    def _student_for(self, tokenizer: Any) -> StudentArchitecture:
        positions = max(self.architecture.max_position, self.max_length)
        return replace(self.architecture, vocab_size=len(tokenizer), max_position=positions)

    def build_classifier(self, tokenizer: Any, source: str | None, n_outputs: int) -> Any:
        """A freshly headed classifier with ``n_outputs`` outputs, in training mode."""
        if source is None:
            model = build_classifier(
                self._student_for(tokenizer).bert_config(n_outputs), n_outputs, self.pooling
            )
        else:
            model = build_classifier(source, n_outputs, self.pooling)
            positions = getattr(model.config, "max_position_embeddings", None)
            limit = min(positions, tokenizer.model_max_length) if positions else None
            if limit and self.max_length > limit:
                raise ConfigError(
                    f"model.max_length={self.max_length}: {source} takes at most {limit} tokens"
                )
        if (
            getattr(model.config, "pad_token_id", None) is None
        ):  # causal LMs: the head reads the last real token
            model.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
        if self.lora is not None:
            model = with_lora(model, self.lora)
        model.train()  # from_pretrained returns eval mode; dropout belongs on while training
        return model

    def build_masked_lm(self, tokenizer: Any, source: str | None) -> Any:
        """A masked-LM network over the same weights (a student starts from scratch), for DAPT."""
        from transformers import AutoModelForMaskedLM, BertForMaskedLM

        if source is None:
            student = replace(self.architecture, vocab_size=len(tokenizer))
            return BertForMaskedLM(student.bert_config(1))
        return AutoModelForMaskedLM.from_pretrained(source)


LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}


def lora_settings(lora: Mapping[str, Any]) -> dict[str, Any]:
    """``model.lora`` with defaults; an unknown key is a one-line error."""
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise ConfigError(f"model.lora.{unknown[0]} is not a LoRA setting ({', '.join(LORA_DEFAULTS)})")
    settings = {**LORA_DEFAULTS, **lora}
    require_positive_int("model.lora.r", settings["r"])
    return settings


def with_lora(model: Any, lora: Mapping[str, Any]) -> Any:
    """The classifier with PEFT LoRA adapters on ``target_modules``: only the adapters and the new
    classification head train (the head is PEFT's ``modules_to_save`` for sequence classification)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("model.lora needs peft: pip install -e '.[llm]'") from None
    settings = lora_settings(lora)
    config = LoraConfig(
        task_type="SEQ_CLS",
        r=int(settings["r"]),
        lora_alpha=float(settings["alpha"]),  # type: ignore[arg-type]  # peft annotates int; alpha / r either way
        lora_dropout=float(settings["dropout"]),
        target_modules=list(settings["target_modules"]),
    )
    return get_peft_model(model, config)
