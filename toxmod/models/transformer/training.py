"""One Lightning fine-tune: tokenize, build data/module/trainer from the run's config, fit, keep the best.

Checkpoints live in ``<run_dir>/checkpoints``: ``best-step=<n>.ckpt`` (the monitored operating-point
metric), ``last.ckpt`` (every ``checkpoint.every_n_steps`` steps, every epoch end, when
``max_steps`` ends a chunk and on the first Ctrl-C) -- ``resume=last`` continues from it with
optimizer, scheduler, RNG and data position.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, require_epochs_or_steps, require_int_or_open, require_positive_int
from toxmod.hardware import HardwareSettings
from toxmod.models.base import FitContext
from toxmod.models.transformer.batching import TokenizedTexts
from toxmod.models.transformer.objectives import AuxiliaryBCE, objective_for
from toxmod.models.transformer.schedules import linear_warmup
from toxmod.runs import CHECKPOINT_DIR, LAST_CHECKPOINT

if TYPE_CHECKING:
    from toxmod.models.transformer.scorer import TransformerScorer

CPU_HARDWARE = HardwareSettings("cpu", 1, "32-true", os.cpu_count() or 1, 0)


@dataclass(frozen=True)
class FitOutcome:
    """The checkpoint whose weights the scorer now holds (None: the final weights) and fit numbers."""

    best_checkpoint: str | None
    summary: dict[str, float] = field(default_factory=dict)


def default_monitor(scheme: LabelScheme) -> str:
    """The primary label's recall at the target FPR on valid."""
    decision = scheme.decision_for(scheme.primary_label) or scheme.decision_names[-1]
    return f"valid/{decision}/recall_at_fpr"


def check_fit_settings(scorer: TransformerScorer, scheme: LabelScheme, context: FitContext) -> None:
    """Settings that would otherwise fail deep in Lightning, or only after an epoch of training.

    The optimizer and scheduler are built once on a dummy parameter, so a bad learning rate or
    schedule argument is reported with its config key before anything is trained.
    """
    from toxmod.models.transformer.lightning_parts import validation_metric_names

    dummy = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = (scorer.optimizer or _default_optimizer)(dummy)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.optimizer: {error}") from None
    try:
        (scorer.scheduler if scorer.scheduler is not None else linear_warmup)(optimizer, total_steps=10)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.scheduler: {error}") from None
    trainer = context.trainer
    require_positive_int("trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1))
    for key in ("max_epochs", "max_steps"):
        require_int_or_open(f"trainer.{key}", trainer.get(key))
    known = validation_metric_names(scheme)
    watched = {
        "checkpoint.monitor": context.checkpoint.get("monitor"),
        "early_stopping.monitor": (context.early_stopping or {}).get("monitor"),
    }
    for key, name in watched.items():
        if name and str(name).startswith("valid/") and name not in known:
            raise ConfigError(f"{key}={name} is not a validation metric; choose one of {', '.join(known)}")


def planned_steps(batches_per_epoch: int, trainer_cfg: Mapping[str, Any], prefix: str = "trainer") -> int:
    """Optimizer steps the LR schedule spans: ``max_epochs`` worth (``max_steps`` when epochs are open).

    ``prefix`` names the settings' group in the error when both are open.
    """
    accumulate = int(trainer_cfg.get("accumulate_grad_batches", 1) or 1)
    max_epochs, max_steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps", -1)
    require_epochs_or_steps(prefix, max_epochs, max_steps)
    if max_epochs is None or int(max_epochs) < 0:
        return int(max_steps)
    return math.ceil(batches_per_epoch / accumulate) * int(max_epochs)


def fine_tune(
    scorer: TransformerScorer,
    texts: list[str],
    targets: np.ndarray,
    scheme: LabelScheme,
    context: FitContext,
) -> FitOutcome:
    """Fit ``scorer`` (its model and tokenizer are built here) and leave the selected weights in it."""
    import lightning.pytorch as pl

    from toxmod.models.transformer.lightning_parts import TextClassifierModule, TextDataModule

    quiet_libraries()
    check_fit_settings(scorer, scheme, context)
    hardware = context.hardware or CPU_HARDWARE
    auxiliary_names, auxiliary_values = _auxiliary_targets(scorer, context, len(texts))
    texts, targets, auxiliary_values = train_subsample(
        texts, targets, scorer.max_train_rows, scorer.seed, auxiliary_values
    )
    pl.seed_everything(scorer.seed, workers=True, verbose=False)
    scorer.build(texts, scheme, auxiliary_names)
    objective = objective_for(scheme, scorer.label_weights, targets)
    auxiliary = None
    if auxiliary_values is not None:
        auxiliary = AuxiliaryBCE.from_train(auxiliary_names, auxiliary_values, scorer.auxiliary_weight)
    train = TokenizedTexts.encode(
        scorer.tokenizer,
        texts,
        scorer.max_length,
        objective.target_tensor(targets),
        None if auxiliary is None else auxiliary.target_tensor(auxiliary_values),
    )
    valid = None
    if context.valid_texts is not None and len(context.valid_texts):
        valid = TokenizedTexts.encode(
            scorer.tokenizer,
            context.valid_texts,
            scorer.max_length,
            objective.target_tensor(context.valid_targets),
        )
    data = TextDataModule(
        train,
        valid,
        scorer.tokenizer.pad_token_id or 0,
        scorer.batch_size,
        scorer.eval_batch_size,
        scorer.seed,
        hardware.num_workers,
        scorer.pool_batches,
    )
    trainer_cfg = {"max_epochs": scorer.max_epochs, **context.trainer}
    if valid is None:
        trainer_cfg["limit_val_batches"] = 0
    total_steps = planned_steps(data.batches_per_epoch(hardware.processes), trainer_cfg)
    module = TextClassifierModule(
        scorer.model,
        objective,
        scorer.optimizer or _default_optimizer,
        scorer.scheduler if scorer.scheduler is not None else linear_warmup,
        total_steps,
        context.target_fpr,
        None if context.valid_targets is None else np.asarray(context.valid_targets),
        auxiliary=auxiliary,
        layer_lr_decay=scorer.layer_lr_decay,
    )
    run_dir = Path(context.run_dir) if context.run_dir else Path(tempfile.mkdtemp(prefix="toxmod-fit-"))
    callbacks, best = _callbacks(run_dir / CHECKPOINT_DIR, scheme, context, has_valid=valid is not None)
    trainer = pl.Trainer(
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        strategy=hardware.strategy,
        precision=hardware.precision,
        logger=_logger(context),
        callbacks=[*callbacks, *context.callbacks],
        default_root_dir=str(run_dir),
        enable_model_summary=False,
        enable_progress_bar=True,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        **trainer_cfg,
    )
    ckpt_path = str(context.resume_from) if context.resume_from else None
    # Our own checkpoints: they carry RNG states (numpy/python objects), so not weights-only.
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=False)

    best_path = best.best_model_path if best is not None and best.best_model_path else None
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    scorer.model = module.model.cpu().eval()
    scorer.drop_auxiliary_outputs(scheme)
    summary = {
        "train/rows_used": float(len(texts)),
        "train/auxiliary_targets": float(len(auxiliary_names)),
        **_progress(trainer, run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT),
        "train/planned_steps": float(total_steps),
    }
    if best is not None and best.best_model_score is not None:
        summary["valid/best_monitored"] = float(best.best_model_score)
    return FitOutcome(best_path, summary)


def train_subsample(
    texts: list[str],
    targets: np.ndarray,
    max_rows: int | None,
    seed: int,
    auxiliary: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """A seeded random subset of the train split (``model.max_train_rows``), e.g. for CPU budgets.

    Texts, targets and auxiliary targets stay row-aligned. The split itself (and its hash) is
    unchanged, so the run still compares with full-data runs on the same valid/calib/holdout;
    ``train/rows_used`` records what was trained on.
    """
    if not max_rows or max_rows >= len(texts):
        return texts, targets, auxiliary
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), int(max_rows), replace=False))
    picked_auxiliary = None if auxiliary is None else np.asarray(auxiliary)[chosen]
    return [texts[i] for i in chosen], np.asarray(targets)[chosen], picked_auxiliary


def _auxiliary_targets(
    scorer: TransformerScorer, context: FitContext, n_rows: int
) -> tuple[list[str], np.ndarray | None]:
    """The auxiliary tags to train heads on (none when absent or ``model.auxiliary_weight=0``)."""
    auxiliary = context.auxiliary
    if auxiliary is None or not auxiliary.names or not scorer.auxiliary_weight:
        return [], None
    if len(auxiliary) != n_rows:
        raise ValueError(f"{len(auxiliary)} auxiliary target rows for {n_rows} train texts")
    return list(auxiliary.names), auxiliary.values


def _progress(trainer: Any, last_checkpoint: Path) -> dict[str, float]:
    """Steps and epochs trained; read from ``last.ckpt`` when training ran in spawned DDP workers."""
    step, epoch = trainer.global_step, trainer.current_epoch
    if step == 0 and last_checkpoint.is_file():
        state = torch.load(last_checkpoint, map_location="cpu", weights_only=False, mmap=True)
        step, epoch = state["global_step"], state["epoch"]
    return {"train/global_steps": float(step), "train/epochs": float(epoch)}


def quiet_libraries() -> None:
    """Keep Lightning's tips and transformers' save progress bars out of the run log."""
    import warnings

    from transformers.utils import logging as hf_logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)


def _logger(context: FitContext) -> Any:
    from toxmod.models.transformer.lightning_parts import TrackerLogger

    if context.tracker is None or not getattr(context.tracker, "enabled", False):
        return False
    return TrackerLogger(context.tracker)


def _callbacks(
    directory: Path, scheme: LabelScheme, context: FitContext, has_valid: bool
) -> tuple[list[Any], Any]:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, TQDMProgressBar

    from toxmod.models.transformer.lightning_parts import LastCheckpoint

    settings = dict(context.checkpoint)
    monitor = settings.get("monitor") or default_monitor(scheme)
    mode = str(settings.get("mode", "max"))
    every_n_steps = settings.get("every_n_steps")
    callbacks: list[Any] = [RichProgressBar() if sys.stdout.isatty() else TQDMProgressBar(refresh_rate=50)]
    best = None
    if has_valid:
        best = ModelCheckpoint(
            dirpath=str(directory),
            filename="best-step={step}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_weights_only=bool(settings.get("best_weights_only", True)),
        )
        callbacks.append(best)
        early = dict(context.early_stopping or {})
        if early.pop("enabled", False):
            callbacks.append(EarlyStopping(monitor=early.pop("monitor", None) or monitor, mode=mode, **early))
    # After the best checkpoint (Lightning keeps checkpoint callbacks in this order, at the end), so
    # the epoch-end last.ckpt already holds this validation's best score.
    callbacks.append(LastCheckpoint(str(directory / LAST_CHECKPOINT), every_n_steps))
    return callbacks, best
