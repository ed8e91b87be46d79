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

    def __post_init__(self) -> None:
        require_positive_int("model.max_length", self.max_length)
        if self.max_length < MIN_MAX_LENGTH:
            raise ConfigError(f"model.max_length={self.max_length}: at least {MIN_MAX_LENGTH} tokens")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={self.pooling!r}; expected cls or mean")

    @classmethod
    def from_settings(
        cls, student: Mapping[str, Any] | StudentArchitecture | None = None, **settings: Any
    ) -> EncoderSpec:
        """From ``model.*`` values; ``student`` may be the ``student`` group's mapping."""
        if isinstance(student, Mapping) and student:
            student = StudentArchitecture(**student)
        return cls(student=student or None, **settings)

    def weight_source(self) -> str | None:
        """The local directory (or hub name) holding the initial weights; None for a student."""
        if self.init_from:
            return resolve_pretrained(self.init_from, key="model.init_from")
        if self.student is not None:
            return None
        return resolve_pretrained(self.pretrained, self.package)

    def build_tokenizer(self, train_texts: Sequence[str], source: str | None) -> Any:
        """The source's tokenizer, or for a student a WordPiece vocabulary learned from ``train_texts``."""
        if source is not None:
            return load_tokenizer(source)
        settings = {"vocab_size": self.student.vocab_size, **self.tokenizer}
        return train_wordpiece_tokenizer(train_texts, **settings)

    def _student_for(self, tokenizer: Any) -> StudentArchitecture:
        positions = max(self.student.max_position, self.max_length)
        return replace(self.student, vocab_size=len(tokenizer), max_position=positions)

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
        model.train()  # from_pretrained returns eval mode; dropout belongs on while training
        return model

    def build_masked_lm(self, tokenizer: Any, source: str | None) -> Any:
        """A masked-LM network over the same weights (a student starts from scratch), for DAPT."""
        from transformers import AutoModelForMaskedLM, BertForMaskedLM

        if source is None:
            student = replace(self.student, vocab_size=len(tokenizer))
            return BertForMaskedLM(student.bert_config(1))
        return AutoModelForMaskedLM.from_pretrained(source)
