"""Tokenized texts, length-bucketed batches with dynamic padding, and a resumable batch order.

The order of an epoch is a pure function of (seed, epoch), so a run resumed mid-epoch from a
checkpoint skips exactly the batches it already trained on and sees the same data order as an
uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from toxmod.models.token_batches import bucketed_batches, pad_batch


class TokenizedTexts(Dataset[dict[str, Any]]):
    """Token ids (truncated to ``max_length``) and, optionally, target, auxiliary-target and teacher rows."""

    def __init__(
        self,
        input_ids: list[list[int]],
        targets: torch.Tensor | None = None,
        auxiliary: torch.Tensor | None = None,
        teacher: torch.Tensor | None = None,
        **channels: torch.Tensor | None,
    ) -> None:
        self.input_ids = input_ids
        self.targets = targets
        self.auxiliary = auxiliary
        self.teacher = teacher
        # More per-row tensors by name (e.g. ``teacher_hidden``, ``labelled``); None = absent.
        self.channels = {name: rows for name, rows in channels.items() if rows is not None}

    @classmethod
    def encode(
        cls,
        tokenizer: Any,
        texts: Sequence[str],
        max_length: int,
        targets: torch.Tensor | None = None,
        auxiliary: torch.Tensor | None = None,
        teacher: torch.Tensor | None = None,
        **channels: torch.Tensor | None,
    ) -> TokenizedTexts:
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return cls(encoded, targets, auxiliary, teacher, **channels)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.input_ids[index]}
        if self.targets is not None:
            item["targets"] = self.targets[index]
        if self.auxiliary is not None:
            item["auxiliary"] = self.auxiliary[index]
        if self.teacher is not None:
            item["teacher"] = self.teacher[index]
        for name, rows in self.channels.items():
            item[name] = rows[index]
        return item


class PadCollator:
    """Pads a batch to its own longest sequence (dynamic padding)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_batch([item["input_ids"] for item in items], self.pad_id)
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
        for key in items[0]:
            if key != "input_ids":
                batch[key] = torch.stack([item[key] for item in items])
        return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed shuffled batches; the order depends only on (seed, epoch).

    ``position`` (called when an epoch's iteration starts) returns ``(epoch, batches_done)``: the
    trainer's epoch and how many of its batches a resumed run already trained on (skipped). Without
    it, ``set_epoch`` sets the epoch. ``rank``/``world_size`` shard batches for DDP.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int,
        pool_batches: int = 50,
        rank: int = 0,
        world_size: int = 1,
        position: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_batches = pool_batches
        self.rank = rank
        self.world_size = world_size
        self.position = position
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        batches = bucketed_batches(self.lengths, self.batch_size, rng, self.pool_batches)
        per_rank = len(batches) // self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        n, pool = len(self.lengths), self.batch_size * max(self.pool_batches, 1)
        sizes = [min(pool, n - start) for start in range(0, n, pool)]
        n_batches = sum(-(-size // self.batch_size) for size in sizes)
        return n_batches // self.world_size if self.world_size > 1 else n_batches

    def __iter__(self) -> Iterator[list[int]]:
        skip = 0
        if self.position is not None:
            self.epoch, skip = self.position()
        yield from self.epoch_batches(self.epoch)[skip:]


class ResumableLoader(DataLoader[dict[str, Any]]):
    """A DataLoader Lightning treats as resumable; the position lives in the batch sampler."""

    def state_dict(self) -> dict[str, int]:
        sampler = self.batch_sampler
        return {"epoch": int(getattr(sampler, "epoch", 0))}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.batch_sampler, BucketBatchSampler):
            self.batch_sampler.set_epoch(int(state.get("epoch", 0)))
