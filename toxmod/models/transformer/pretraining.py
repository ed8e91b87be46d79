"""Domain-adaptive pretraining (DAPT): continue masked-LM training of an encoder on unlabeled text.

The output directory (weights + tokenizer) is what ``model.init_from=<dir>`` fine-tunes from.
Like a fine-tune, it writes ``last.ckpt`` (every ``every_n_steps`` steps, every epoch end, when
``max_steps`` ends a chunk and at the first Ctrl-C) and continues from it exactly: optimizer,
scheduler, RNG (the masking) and data position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from toxmod.errors import ConfigError, require_epochs_or_steps, require_int_or_open, require_positive_int
from toxmod.hardware import HardwareSettings
from toxmod.models.transformer.batching import BucketBatchSampler, ResumableLoader, TokenizedTexts
from toxmod.models.transformer.callbacks import LastCheckpoint
from toxmod.models.transformer.encoder import EncoderSpec
from toxmod.models.transformer.lightning_parts import KeepsRngStates, read_checkpoint
from toxmod.models.transformer.recipe import FineTuneRecipe
from toxmod.models.transformer.schedules import linear_warmup


class MaskedLMModule(KeepsRngStates, pl.LightningModule):
    """Masked-LM loss of an ``AutoModelForMaskedLM``; AdamW with linear warmup."""

    def __init__(self, model: torch.nn.Module, lr: float, total_steps: int, warmup_ratio: float) -> None:
        super().__init__()
        self.model, self.lr, self.total_steps, self.warmup_ratio = model, lr, total_steps, warmup_ratio

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("dapt/mlm_loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=0.01)
        scheduler = linear_warmup(optimizer, self.total_steps, self.warmup_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def check_pretrain_settings(settings: Mapping[str, Any]) -> None:
    """One-line ConfigErrors for ``pretrain.*`` values that would fail inside torch or Lightning."""
    require_positive_int("pretrain.batch_size", settings.get("batch_size", 1))
    epochs, steps = settings.get("max_epochs", 1), settings.get("max_steps", -1)
    if epochs not in (None, -1):
        require_positive_int("pretrain.max_epochs", epochs)
    require_int_or_open("pretrain.max_steps", steps, open_values="-1")
    require_epochs_or_steps("pretrain", epochs, steps)
    bounds: dict[str, tuple[float, Callable[[float], bool], str]] = {  # key: (default, accepted, description)
        "lr": (5e-5, lambda v: v > 0, "> 0"),
        "warmup_ratio": (0.06, lambda v: 0 <= v <= 1, "in [0, 1]"),
        "mlm_probability": (0.15, lambda v: 0 < v < 1, "in (0, 1)"),
    }
    for key, (default, accepted, description) in bounds.items():
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not accepted(value):
            raise ConfigError(f"pretrain.{key}={value!r}: expected a number {description}")


def pretrain(
    encoder: EncoderSpec,
    recipe: FineTuneRecipe,
    texts: Sequence[str],
    out_dir: Path,
    hardware: HardwareSettings,
    settings: Mapping[str, Any],
    logger: Any = False,
    last_checkpoint: Path | None = None,
    resume_from: Path | None = None,
) -> dict[str, float]:
    """Run masked-LM training of ``encoder`` on ``texts`` and save weights + tokenizer to ``out_dir``.

    From ``recipe``: the seed, the default batch size and the length-bucketing pool.

    ``last_checkpoint`` is where ``last.ckpt`` goes (``settings["every_n_steps"]`` apart);
    ``resume_from`` continues from such a checkpoint. The LR schedule spans ``max_epochs``
    (``max_steps`` only when epochs are open), so chunks end where one whole run would.
    """
    from transformers import DataCollatorForLanguageModeling

    from toxmod.models.transformer.training import planned_steps, quiet_libraries

    quiet_libraries()
    check_pretrain_settings(settings)
    pl.seed_everything(recipe.seed, workers=True, verbose=False)
    source = encoder.weight_source()
    tokenizer = encoder.build_tokenizer(texts, source)
    model = encoder.build_masked_lm(tokenizer, source)
    encoded = TokenizedTexts.encode(tokenizer, texts, encoder.max_length)
    batch_size = int(settings.get("batch_size", recipe.batch_size))
    limits = {
        "max_epochs": int(settings.get("max_epochs", 1) or -1),
        "max_steps": int(settings.get("max_steps", -1) or -1),
    }
    every_n_steps = settings.get("every_n_steps")
    callbacks = [] if last_checkpoint is None else [LastCheckpoint(str(last_checkpoint), every_n_steps)]
    options: dict[str, Any] = dict(
        accelerator=hardware.accelerator,
        devices=1,
        precision=hardware.precision,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=bool(callbacks),
        enable_model_summary=False,
        log_every_n_steps=10,
        default_root_dir=str(out_dir.parent),
        **limits,
    )
    trainer = pl.Trainer(**options)
    progress = trainer.fit_loop.epoch_loop.batch_progress
    sampler = BucketBatchSampler(
        encoded.lengths,
        batch_size,
        recipe.seed,
        recipe.pool_batches,
        position=lambda: (trainer.current_epoch, progress.current.completed),
    )
    collate = DataCollatorForLanguageModeling(
        tokenizer, mlm_probability=float(settings.get("mlm_probability", 0.15))
    )
    loader = ResumableLoader(
        encoded,
        batch_sampler=sampler,
        collate_fn=lambda items: collate([{"input_ids": i["input_ids"]} for i in items]),
        # Not the global RNG: a (re)started iterator must not shift the masking draws.
        generator=torch.Generator().manual_seed(recipe.seed),
    )
    total_steps = planned_steps(len(sampler), limits, prefix="pretrain")
    module = MaskedLMModule(
        model, float(settings.get("lr", 5e-5)), total_steps, float(settings.get("warmup_ratio", 0.06))
    )
    ckpt_path = None
    if resume_from:
        read_checkpoint(resume_from, mmap=True)  # refused in one line unless it is plain data
        ckpt_path = str(resume_from)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    network: Any = module.model
    network.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {
        "dapt/texts": float(len(texts)),
        "dapt/steps": float(trainer.global_step),
        "dapt/planned_steps": float(total_steps),
        "dapt/final_mlm_loss": float(trainer.callback_metrics.get("dapt/mlm_loss", float("nan"))),
    }
