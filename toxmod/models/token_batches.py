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


def load_tokenizer(directory: str | Path) -> Any:
    """A tokenizer saved with ``save_pretrained`` (student or pretrained); no remote code is run."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{directory}: the tokenizer cannot be read ({reason[:200]})") from None


def load_fast_tokenizer(directory: str | Path) -> Any:
    """The folder's fast tokenizer straight from its ``tokenizer.json`` (what ``load_tokenizer`` builds
    for these encoders, without ``AutoTokenizer`` reading the model config, which imports torch); a
    folder without one goes through ``load_tokenizer``."""
    if not (Path(directory) / "tokenizer.json").is_file():
        return load_tokenizer(directory)
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(str(directory))
    except (OSError, ValueError) as error:
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
    tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Texts tokenized once, sorted by length and padded per batch: ``(row indices, ids, mask)``."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
    pad_id = tokenizer.pad_token_id or 0
    return [
        (rows, *pad_batch([encoded[i] for i in rows], pad_id))
        for rows in bucketed_batches(lengths, batch_size, rng=None)
    ]
