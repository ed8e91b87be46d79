"""The Lightning pieces of a fine-tune: data module, classifier module, RNG states in checkpoints
(the logger and callbacks are in ``callbacks.py``).

Validation computes the operating point every epoch (the ``ValidationMetrics`` the stage hands over:
thresholds at the target FPR on valid, then ``valid/<decision>/recall_at_fpr``, macro F1, ...) for
checkpoint selection.
"""

from __future__ import annotations

import math
import pickle
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from toxmod.data.schemes import LabelScheme
from toxmod.errors import DamagedFileError, TrainingError
from toxmod.models.base import ValidationMetrics
from toxmod.models.token_batches import bucketed_batches
from toxmod.models.transformer.batching import (
    BucketBatchSampler,
    PadCollator,
    ResumableLoader,
    TokenizedTexts,
)
from toxmod.models.transformer.losses import ModelOutput, WeightedLoss
from toxmod.models.transformer.objectives import Objective
from toxmod.models.transformer.parameter_groups import LR_SCALE_KEY, parameter_groups, scale_learning_rates

RNG_STATE_KEY = "toxmod_rng_states"
# Checkpoints are read with torch.load(weights_only=True): tensors and plain Python values only. The
# numpy RNG state is saved as plain lists; checkpoints written before that hold numpy arrays, whose
# reconstruction (no code of the file's author) is allowed too, in this process and in DDP workers.
torch.serialization.add_safe_globals(
    [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]  # type: ignore[attr-defined]
)


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's contents, read without running code from it (one-line error otherwise)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedFileError(f"{path}: not a checkpoint that can be read safely ({reason[:200]})") from None


def _numpy_state() -> dict[str, Any]:
    state: Any = np.random.get_state()  # the legacy tuple form
    name, keys, position, has_gauss, cached_gaussian = state
    return {
        "name": name,
        "keys": keys.tolist(),
        "pos": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: Any) -> None:
    if isinstance(state, dict):  # plain values (current checkpoints)
        keys = np.asarray(state["keys"], dtype=np.uint32)
        state = (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    np.random.set_state(state)


class TextDataModule(pl.LightningDataModule):
    """Train batches are length-bucketed, shuffled per (seed, epoch), resumable and DDP-sharded."""

    def __init__(
        self,
        train: TokenizedTexts,
        valid: TokenizedTexts | None,
        pad_id: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        num_workers: int = 0,
        pool_batches: int = 50,
    ) -> None:
        super().__init__()
        self.train_texts, self.valid_texts = train, valid
        self.collate = PadCollator(pad_id)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.num_workers, self.pool_batches = seed, num_workers, pool_batches

    def batches_per_epoch(self, world_size: int = 1) -> int:
        return len(self._sampler(rank=0, world_size=world_size))

    def _sampler(
        self, rank: int, world_size: int, position: Callable[[], tuple[int, int]] | None = None
    ) -> BucketBatchSampler:
        return BucketBatchSampler(
            self.train_texts.lengths,
            self.batch_size,
            self.seed,
            self.pool_batches,
            rank=rank,
            world_size=world_size,
            position=position,
        )

    def _loader(self, dataset: TokenizedTexts, batch_sampler: Any) -> ResumableLoader:
        return ResumableLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Base seeds for worker processes come from this generator, not the global RNG, so
            # creating an iterator at (re)start does not shift dropout masks.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> ResumableLoader:
        trainer = self.trainer
        assert trainer is not None, "train_dataloader() outside a Trainer"
        progress = trainer.fit_loop.epoch_loop.batch_progress
        sampler = self._sampler(
            trainer.global_rank,
            trainer.world_size,
            lambda: (trainer.current_epoch, progress.current.completed),
        )
        return self._loader(self.train_texts, sampler)

    def val_dataloader(self) -> ResumableLoader | list[Any]:
        if self.valid_texts is None:
            return []
        # Every rank scores all of valid: thresholds need the whole split, and it is small.
        batches = bucketed_batches(self.valid_texts.lengths, self.eval_batch_size, rng=None)
        return self._loader(self.valid_texts, batches)


class KeepsRngStates:
    """Checkpoints carry every rank's torch/numpy/python/cuda RNG states; loading restores this rank's.

    With the data position (the batch sampler) this makes a resumed run draw the same dropout and
    masking as an uninterrupted one. Mixed in first: ``class M(KeepsRngStates, pl.LightningModule)``.
    """

    trainer: pl.Trainer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        # Every rank's own states (DDP ranks draw different dropout masks); all ranks save together.
        per_rank: list[Any] = [state]
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            per_rank = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(per_rank, state)
        checkpoint[RNG_STATE_KEY] = {"per_rank": per_rank}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(RNG_STATE_KEY)
        if not saved:
            return
        per_rank = saved.get("per_rank", [saved])
        states = per_rank[min(self.trainer.global_rank, len(per_rank) - 1)]
        torch.set_rng_state(states["torch"])
        _set_numpy_state(states["numpy"])
        random.setstate(states["python"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class TextClassifierModule(KeepsRngStates, pl.LightningModule):
    """An HF sequence classifier trained on a weighted sum of named loss terms; validation at the
    operating point.

    The model may have more outputs than the scheme (auxiliary heads after the scheme's); validation,
    thresholds and scores see the scheme's outputs only. ``monitored`` names the validation metrics
    that select checkpoints: one that comes out NaN stops the run with the reason, as does a
    non-finite loss (a diverged run must never be kept as "best").
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss: WeightedLoss,
        objective: Objective,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any],
        total_steps: int,
        validation: ValidationMetrics | None = None,
        valid_targets: np.ndarray | None = None,
        monitored: Sequence[str] = (),
        weight_decay_exclude: tuple[str, ...] = ("bias", "LayerNorm.weight", "layer_norm.weight"),
        layer_lr_decay: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        # Trainable parts of loss terms (a hidden-state projection): optimized and checkpointed with
        # the model, never saved with it.
        self.loss_parts = torch.nn.ModuleList(loss.modules())
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.total_steps = total_steps
        self.validation = validation
        self.valid_targets = valid_targets
        self.monitored = tuple(monitored)
        self.weight_decay_exclude = weight_decay_exclude
        self.layer_lr_decay = layer_lr_decay
        self._valid_logits: list[torch.Tensor] = []
        self._valid_losses: list[torch.Tensor] = []
        self._last_batch_end: float | None = None

    @property
    def scheme(self) -> LabelScheme:
        return self.objective.scheme

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden_states: bool = False
    ) -> ModelOutput:
        """Every output's logits, and the hidden states when asked for."""
        output = self.model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=hidden_states
        )
        states = tuple(output.hidden_states) if hidden_states else None
        return ModelOutput(output.logits, attention_mask, states)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        output = self(batch["input_ids"], batch["attention_mask"], self.loss.needs_hidden_states)
        loss, terms = self.loss(output, batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"training diverged: train/loss is {float(loss.detach())} at step {self.global_step} "
                "(lower model.optimizer.lr, or check the data)"
            )
        size = len(output.logits)
        for name, value in terms.items():
            self.log(f"train/loss/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Mapping[str, torch.Tensor], batch_index: int) -> None:
        now = time.perf_counter()
        if self._last_batch_end is not None:
            rate = len(batch["input_ids"]) * self.trainer.world_size / (now - self._last_batch_end)
            self.log("train/samples_per_s", rate, prog_bar=True, logger=False, batch_size=1)
        self._last_batch_end = now

    def on_train_epoch_start(self) -> None:
        self._last_batch_end = None

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_index: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"]).logits[:, : self.objective.n_outputs]
        self._valid_losses.append(self.objective.loss(logits, batch["targets"]).detach() * len(logits))
        self._valid_logits.append(logits.detach().float().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._valid_logits:
            return
        loader: Any = self.trainer.val_dataloaders
        order = np.concatenate(loader.batch_sampler)
        logits = torch.cat(self._valid_logits)
        scores = np.empty((len(order), logits.shape[1]), dtype=np.float64)
        scores[order] = self.objective.scores(logits).numpy()
        loss = float(torch.stack(self._valid_losses).sum() / len(order))
        self._valid_logits.clear()
        self._valid_losses.clear()
        targets = self.valid_targets
        metrics = {
            **(self.validation(scores, targets) if self.validation and targets is not None else {}),
            "valid/loss": loss,
        }
        undefined = [name for name in ("valid/loss", *self.monitored) if math.isnan(metrics.get(name, 0.0))]
        if undefined:
            raise TrainingError(
                f"{undefined[0]} is NaN at step {self.global_step}: "
                + (
                    "training diverged (lower model.optimizer.lr)"
                    if undefined[0] == "valid/loss"
                    else "it is undefined on this valid split (a label without positives or negatives?); "
                    "choose another checkpoint.monitor"
                )
            )
        # For the checkpoint and early-stopping callbacks; the tracker gets them at the global step,
        # the step a best-step=N checkpoint is named after (Lightning's own logging uses N - 1).
        self.log_dict(metrics, prog_bar=False, batch_size=1, logger=False)
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.global_step)
        self._last_batch_end = None  # validation time is not training throughput

    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.model, self.weight_decay_exclude, self.layer_lr_decay)
        extra = [p for p in self.loss_parts.parameters() if p.requires_grad]
        if extra:
            groups.append({"params": extra, LR_SCALE_KEY: 1.0})
        optimizer = scale_learning_rates(self.optimizer_factory(groups))
        scheduler = self.scheduler_factory(optimizer, total_steps=self.total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
