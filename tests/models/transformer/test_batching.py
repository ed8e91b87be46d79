"""Length bucketing, dynamic padding and the resumable batch order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toxmod.models.token_batches import bucketed_batches
from toxmod.models.transformer.batching import BucketBatchSampler, PadCollator

pytestmark = pytest.mark.data_free


def test_bucketed_batches_cover_every_index_once_and_group_similar_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1000)
    batches = bucketed_batches(lengths, 16, np.random.default_rng(1), pool_batches=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[rng.permutation(1000)[:16]]) for _ in range(50)])
    assert spread < random_spread / 3  # buckets hold similar lengths, so padding is small
    scoring = bucketed_batches(lengths, 16, rng=None)
    assert np.all(np.diff(lengths[np.concatenate(scoring)]) >= 0)


def test_epoch_order_depends_only_on_seed_and_epoch_and_resume_skips_done_batches() -> None:
    lengths = np.arange(200) % 37 + 1
    sampler = BucketBatchSampler(lengths, 8, seed=3, pool_batches=4)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == len(sampler) == len(sampler.epoch_batches(2))
    assert full == BucketBatchSampler(lengths, 8, seed=3, pool_batches=4).epoch_batches(2)
    assert full != sampler.epoch_batches(1)
    resumed = BucketBatchSampler(lengths, 8, seed=3, pool_batches=4, position=lambda: (2, 5))
    assert list(resumed) == full[5:]


def test_ddp_shards_are_disjoint_and_equal_sized() -> None:
    lengths = np.arange(203) % 29 + 1
    shards = [BucketBatchSampler(lengths, 8, seed=0, rank=r, world_size=2).epoch_batches(0) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(BucketBatchSampler(lengths, 8, 0, rank=0, world_size=2))
    seen = [set(np.concatenate(s).tolist()) for s in shards]
    assert not seen[0] & seen[1]


def test_pad_collator_pads_to_the_longest_in_the_batch() -> None:
    batch = PadCollator(pad_id=0)(
        [
            {"input_ids": [5, 6, 7], "targets": torch.tensor([1.0])},
            {"input_ids": [8], "targets": torch.tensor([0.0])},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["targets"].tolist() == [[1.0], [0.0]]
