"""Token id batches for scoring, in plain numpy (no torch): sorted by length, padded per batch.

Every runtime that scores an encoder (torch, ONNX Runtime) reads the same batches; a process that
serves an ONNX model never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.errors import DamagedFileError
from toxmod.files import read_json
from toxmod.limits import check_model_folder


def load_tokenizer(directory: str | Path) -> Any:
    """A tokenizer saved with ``save_pretrained`` (student or pretrained); no remote code is run."""
    from transformers import AutoTokenizer

    check_model_folder(Path(directory))
    try:
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{directory}: the tokenizer cannot be read ({reason[:200]})") from None


class FastTokenizer:
    """A saved fast tokenizer read with the ``tokenizers`` library alone: the same ids as the
    transformers tokenizer built from the same ``tokenizer.json`` (special tokens, truncation), without
    importing transformers (seconds of a serving process's start)."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self._truncation: int | None = None
        config = directory / "tokenizer_config.json"
        settings = read_json(config) if config.is_file() else {}
        pad = settings.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self.tokenizer.token_to_id(pad) if pad else None

    def __call__(
        self, texts: Sequence[str], truncation: bool = True, max_length: int | None = None
    ) -> dict[str, Any]:
        limit = max_length if truncation else None
        if limit != self._truncation:
            if limit:
                self.tokenizer.enable_truncation(limit)
            else:
                self.tokenizer.no_truncation()
            self._truncation = limit
        return {"input_ids": [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]}


def load_fast_tokenizer(directory: str | Path) -> Any:
    """The folder's fast tokenizer straight from its ``tokenizer.json`` (``FastTokenizer``: no
    transformers import); a folder without one goes through ``load_tokenizer``."""
    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        return load_tokenizer(directory)
    check_model_folder(directory)
    try:
        return FastTokenizer(directory)
    except Exception as error:  # noqa: BLE001 - tokenizers raises a plain Exception for a bad file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{directory}: the tokenizer cannot be read ({reason[:200]})") from None


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists padded to the longest: ``(input_ids, attention_mask)``, int64 numpy arrays."""
    width = max(len(ids) for ids in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None, pool_batches: int = 50
) -> list[list[int]]:
    """Batches of similar-length texts.

    With ``rng``: shuffle, sort by length within pools of ``pool_batches`` batches, cut into batches,
    shuffle the batch order. Without: one pass sorted by length (scoring).
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    pool = batch_size * max(pool_batches, 1)
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def scoring_batches(
    tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int, max_tokens: int | None = None
) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Texts tokenized once, sorted by length and padded per batch: ``(row indices, ids, mask)``.

    ``max_tokens``: a batch also ends before its padded size (rows x its longest text) passes this
    many tokens, so a call of texts of mixed lengths is not padded to its longest one (CPU scoring).
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
    pad_id = tokenizer.pad_token_id or 0
    batches = (
        token_budget_batches(lengths, batch_size, max_tokens)
        if max_tokens
        else bucketed_batches(lengths, batch_size, rng=None)
    )
    return [(rows, *pad_batch([encoded[i] for i in rows], pad_id)) for rows in batches]


def token_budget_batches(lengths: np.ndarray, batch_size: int, max_tokens: int) -> list[list[int]]:
    """Rows sorted by length, cut into batches of at most ``batch_size`` rows whose padded size
    (rows x the longest, the last row) stays within ``max_tokens`` (a single longer text is its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for row in np.argsort(lengths, kind="stable").tolist():
        if current and ((len(current) + 1) * int(lengths[row]) > max_tokens or len(current) >= batch_size):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches
