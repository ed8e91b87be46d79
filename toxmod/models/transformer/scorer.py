"""``TransformerScorer``: any HF encoder (pretrained or a from-scratch student) behind the scoring interface.

``fit`` runs a Lightning fine-tune (see ``training.py``); ``predict_scores`` tokenizes, length-sorts,
pads per batch and returns per-label (sigmoid) or per-level (softmax) probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, require_positive_int
from toxmod.models.base import FitContext, Scorer
from toxmod.models.transformer.backbones import (
    StudentArchitecture,
    build_classifier,
    keep_first_outputs,
    load_saved_classifier,
    resolve_pretrained,
)
from toxmod.models.transformer.batching import PadCollator, TokenizedTexts, bucketed_batches
from toxmod.models.transformer.objectives import OBJECTIVES, LabelWeights
from toxmod.models.transformer.tokenization import load_tokenizer, train_wordpiece_tokenizer
from toxmod.reports import scoring_progress

MIN_MAX_LENGTH = 8  # [CLS] + a few tokens + [SEP]


class TransformerScorer(Scorer):
    """A sequence classifier fine-tuned with Lightning.

    Exactly one weight source: ``init_from`` (e.g. a DAPT output), else ``student`` (an architecture
    mapping: a from-scratch BERT with a WordPiece tokenizer trained on the train split), else
    ``pretrained`` (local dir or hub name) / ``package`` (an installed weights package, offline).
    """

    kind = "transformer"

    def __init__(
        self,
        pretrained: str | None = None,
        package: str | None = None,
        init_from: str | None = None,
        student: Mapping[str, Any] | None = None,
        tokenizer: Mapping[str, Any] | None = None,
        pooling: str = "cls",
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_epochs: int = 3,
        label_weights: LabelWeights = "auto",
        auxiliary_weight: float = 1.0,
        optimizer: Any = None,
        scheduler: Any = None,
        layer_lr_decay: float = 1.0,
        pool_batches: int = 50,
        max_train_rows: int | None = None,
        score_device: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        sizes = {"max_length": max_length, "batch_size": batch_size, "eval_batch_size": eval_batch_size}
        sizes.update({"max_epochs": max_epochs, "pool_batches": pool_batches})
        for name, value in sizes.items():
            require_positive_int(f"model.{name}", value)
        if max_length < MIN_MAX_LENGTH:
            raise ConfigError(f"model.max_length={max_length}: at least {MIN_MAX_LENGTH} tokens")
        if max_train_rows:  # null or 0: every train row
            require_positive_int("model.max_train_rows", max_train_rows)
        self.pretrained, self.package, self.init_from = pretrained, package, init_from
        self.student = dict(student) if student else None
        self.tokenizer_params = dict(tokenizer or {})
        self.pooling = pooling
        self.max_length, self.batch_size, self.eval_batch_size = max_length, batch_size, eval_batch_size
        self.max_epochs = max_epochs  # used when the trainer config does not set trainer.max_epochs
        self.label_weights = label_weights
        self.auxiliary_weight = auxiliary_weight  # loss weight of data.auxiliary heads (0: none built)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.layer_lr_decay = layer_lr_decay  # 1.0: one learning rate; < 1: lower layers move less
        self.pool_batches = pool_batches
        self.max_train_rows = max_train_rows
        self.score_device = score_device
        self.seed = seed
        self.model: Any = None
        self.tokenizer: Any = None
        self.best_checkpoint: str | None = None
        self.training_summary: dict[str, float] = {}

    # -- building -------------------------------------------------------------------------------

    def weight_source(self) -> str:
        """Where the initial weights come from (a local directory, or ``student``)."""
        if self.init_from:
            return resolve_pretrained(self.init_from, key="model.init_from")
        if self.student:
            return "student"
        return resolve_pretrained(self.pretrained, self.package)

    def build(
        self, train_texts: Sequence[str], scheme: LabelScheme, auxiliary_names: Sequence[str] = ()
    ) -> None:
        """Tokenizer and freshly-headed model for ``scheme`` (the student's tokenizer learns train texts).

        ``auxiliary_names`` add training-only outputs after the scheme's (``drop_auxiliary_outputs``).
        """
        source = self.weight_source()
        n_outputs = len(scheme.output_names) + len(auxiliary_names)
        if source == "student":
            self.tokenizer = train_wordpiece_tokenizer(train_texts, **self._tokenizer_settings())
            max_position = max(int(self.student.get("max_position", 512)), self.max_length)
            architecture = StudentArchitecture(
                **{**self.student, "vocab_size": len(self.tokenizer), "max_position": max_position}
            )
            self.model = build_classifier(architecture.bert_config(n_outputs), n_outputs, self.pooling)
        else:
            self.tokenizer = load_tokenizer(source)
            self.model = build_classifier(source, n_outputs, self.pooling)
            positions = getattr(self.model.config, "max_position_embeddings", None)
            limit = min(positions, self.tokenizer.model_max_length) if positions else None
            if limit and self.max_length > limit:
                raise ConfigError(
                    f"model.max_length={self.max_length}: {source} takes at most {limit} tokens"
                )
        self.model.train()  # from_pretrained returns eval mode; dropout belongs on while training
        self._name_outputs([*scheme.output_names, *(f"auxiliary:{name}" for name in auxiliary_names)])

    def drop_auxiliary_outputs(self, scheme: LabelScheme) -> None:
        """Cut the model back to the scheme's outputs (what is saved, scored and exported)."""
        total = len(self.model.config.id2label)
        self.model = keep_first_outputs(self.model, len(scheme.output_names), total)
        self._name_outputs(scheme.output_names)

    def _name_outputs(self, names: Sequence[str]) -> None:
        self.model.config.id2label = dict(enumerate(names))
        self.model.config.label2id = {name: i for i, name in enumerate(names)}

    def _tokenizer_settings(self) -> dict[str, Any]:
        settings = {"vocab_size": int((self.student or {}).get("vocab_size", 8000))}
        settings.update(self.tokenizer_params)
        return settings

    # -- the scoring interface ------------------------------------------------------------------

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> TransformerScorer:
        from toxmod.models.transformer.training import fine_tune

        self.scheme = scheme
        outcome = fine_tune(self, list(texts), np.asarray(targets), scheme, context or FitContext())
        self.best_checkpoint = outcome.best_checkpoint
        self.training_summary = outcome.summary
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        assert self.scheme is not None and self.model is not None, "predict_scores() before fit()/load()"
        objective = OBJECTIVES[self.scheme.kind](self.scheme)
        encoded = TokenizedTexts.encode(self.tokenizer, texts, self.max_length)
        batches = bucketed_batches(encoded.lengths, self.eval_batch_size, rng=None)
        collate = PadCollator(self.tokenizer.pad_token_id or 0)
        device = self._scoring_device()
        model = self.model.to(device).eval()
        scores = np.empty((len(encoded), len(self.scheme.output_names)), dtype=np.float64)
        with torch.inference_mode(), scoring_progress(len(encoded), show=len(batches) > 20) as advance:
            for batch in batches:
                tensors = collate([encoded[i] for i in batch])
                logits = model(
                    input_ids=tensors["input_ids"].to(device),
                    attention_mask=tensors["attention_mask"].to(device),
                ).logits
                scores[batch] = objective.scores(logits).cpu().numpy()
                advance(len(batch))
        return scores

    def _scoring_device(self) -> torch.device:
        if self.score_device != "auto":
            return torch.device(self.score_device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # -- persistence ----------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "pooling": self.pooling,
            "max_length": self.max_length,
            "eval_batch_size": self.eval_batch_size,
            "score_device": self.score_device,
            "seed": self.seed,
        }

    def _save_weights(self, directory: Path) -> None:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def _load_weights(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory)
        self.model = load_saved_classifier(directory).eval()

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters()) if self.model is not None else 0
