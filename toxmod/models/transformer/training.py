"""One Lightning fine-tune: tokenize, build data, module and trainer from the parts, fit, keep the best.

Checkpoints go where the ``FitContext`` says (the run record names them): ``best-step=<n>.ckpt`` (the
monitored operating-point metric) and the last checkpoint (every ``checkpoint.every_n_steps``
steps, every epoch end, when ``max_steps`` ends a chunk and on the first Ctrl-C) -- ``resume=``
continues from it with optimizer, scheduler, RNG and data position.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, require_epochs_or_steps, require_int_or_open, require_positive_int
from toxmod.models.base import FitContext, FitReport
from toxmod.models.transformer.backbones import keep_first_outputs
from toxmod.models.transformer.batching import TokenizedTexts
from toxmod.models.transformer.encoder import EncoderSpec
from toxmod.models.transformer.loss_terms import LossInputs, build_loss
from toxmod.models.transformer.losses import AuxiliaryLoss
from toxmod.models.transformer.objectives import objective_for
from toxmod.models.transformer.recipe import FineTuneRecipe
from toxmod.models.transformer.train_rows import TeacherRows, auxiliary_targets, pad_rows, train_subsample
from toxmod.progress import console
from toxmod.spec import CheckpointSpec

LAST_CHECKPOINT_NAME = "last.ckpt"  # used only when the context names no checkpoint files


@dataclass(frozen=True)
class FineTuned:
    """What a fine-tune produced: the selected weights (auxiliary heads cut), the tokenizer, a report."""

    model: Any
    tokenizer: Any
    report: FitReport
    variants: tuple[KeptWeights, ...] = ()


@dataclass(frozen=True)
class KeptWeights:
    """A checkpoint kept besides the best (top-k or last), as a model with its auxiliary heads cut."""

    step: int
    monitored: float | None
    model: Any
    last: bool = False


def default_monitor(scheme: LabelScheme, context: FitContext | None = None) -> str:
    """What the run's validation says selects checkpoints (it follows the threshold mode), else the
    primary decision's recall at the target FPR on valid."""
    if context is not None and context.validation_metrics is not None:
        return context.validation_metrics.default_monitor
    return f"valid/{scheme.primary_decision}/recall_at_fpr"


def checkpoint_monitor(scheme: LabelScheme, context: FitContext) -> str:
    """``checkpoint.monitor`` when set, else the default monitor."""
    return context.checkpoint.monitor or default_monitor(scheme, context)


def monitored_metrics(scheme: LabelScheme, context: FitContext) -> list[str]:
    """The validation metrics that select checkpoints (checkpoint monitor, early-stopping monitor)."""
    monitor = checkpoint_monitor(scheme, context)
    names = [monitor]
    if context.early_stopping.enabled and context.early_stopping.monitor:
        names.append(context.early_stopping.monitor)
    return names


def check_fit_settings(recipe: FineTuneRecipe, scheme: LabelScheme, context: FitContext) -> None:
    """Settings that would otherwise fail deep in Lightning, or only after an epoch of training.

    Needs no data: the stage calls it (through ``TransformerScorer.check_settings``) before reading any.
    """
    recipe.check_factories()
    trainer = context.trainer
    require_positive_int("trainer.accumulate_grad_batches", trainer.get("accumulate_grad_batches", 1))
    for key in ("max_epochs", "max_steps"):
        require_int_or_open(f"trainer.{key}", trainer.get(key))
    require_epochs_or_steps(
        "trainer", trainer.get("max_epochs", recipe.max_epochs), trainer.get("max_steps", -1)
    )
    if context.validation_metrics is None:
        return
    known = [*context.validation_metrics.names, "valid/loss"]
    watched = {
        "checkpoint.monitor": context.checkpoint.monitor,
        "early_stopping.monitor": context.early_stopping.monitor,
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
    encoder: EncoderSpec,
    recipe: FineTuneRecipe,
    texts: list[str],
    targets: np.ndarray,
    scheme: LabelScheme,
    context: FitContext,
) -> FineTuned:
    """Build the encoder's tokenizer and classifier, train them, and return the selected weights."""
    import lightning.pytorch as pl
    import torch

    from toxmod.models.transformer.lightning_parts import (
        TextClassifierModule,
        TextDataModule,
        read_checkpoint,
    )

    quiet_libraries()
    check_fit_settings(recipe, scheme, context)
    hardware = context.hardware
    auxiliary_names, auxiliary_values = auxiliary_targets(recipe, context, len(texts))
    n_train = len(texts)
    teacher = context.teacher
    teacher_rows = TeacherRows.split(teacher, n_train)
    texts, targets, auxiliary_values, teacher_logits, teacher_hidden = train_subsample(
        texts, targets, recipe.max_train_rows, recipe.seed, auxiliary_values, *teacher_rows.train
    )
    if len(texts) < n_train:
        console.print(
            f"model.max_train_rows={recipe.max_train_rows}: training on a seeded sample of "
            f"{len(texts)} of the {n_train} train rows"
        )
    n_labelled = len(texts)
    if teacher_rows.extra_texts:  # unlabeled transfer-set texts: only the teacher's terms see them
        texts = [*texts, *teacher_rows.extra_texts]
        teacher_logits = np.concatenate([teacher_logits, teacher_rows.extra[0]])
        if teacher_hidden is not None:
            teacher_hidden = np.concatenate([teacher_hidden, teacher_rows.extra[1]])
        extra = len(teacher_rows.extra_texts)
        console.print(f"distill.transfer: {extra} unlabeled texts beside the train rows")
    pl.seed_everything(recipe.seed, workers=True, verbose=False)
    source = encoder.weight_source()
    tokenizer = encoder.build_tokenizer(texts, source)
    n_outputs = len(scheme.output_names)
    model = encoder.build_classifier(tokenizer, source, n_outputs + len(auxiliary_names))
    _name_outputs(model, [*scheme.output_names, *(f"auxiliary:{name}" for name in auxiliary_names)])
    objective = objective_for(scheme, recipe.label_weights, targets)
    inputs = LossInputs(
        scheme,
        objective,
        model.config,
        teacher,
        tuple(auxiliary_names),
        auxiliary_values,
        recipe.auxiliary_weight,
    )
    loss = build_loss(inputs, recipe.loss_terms)
    auxiliary = next((t for t in loss.terms if isinstance(t, AuxiliaryLoss)), None)
    unlabelled = len(texts) - n_labelled
    train = TokenizedTexts.encode(
        tokenizer,
        texts,
        encoder.max_length,
        objective.target_tensor(pad_rows(targets, unlabelled)),
        None if auxiliary is None else auxiliary.target_tensor(pad_rows(auxiliary_values, unlabelled)),
        None if teacher_logits is None else torch.as_tensor(teacher_logits, dtype=torch.float32),
        teacher_hidden=None if teacher_hidden is None else torch.as_tensor(teacher_hidden).float(),
        labelled=torch.arange(len(texts)) < n_labelled if unlabelled else None,
    )
    valid = None
    if context.validation is not None and len(context.validation.texts):
        valid = TokenizedTexts.encode(
            tokenizer,
            context.validation.texts,
            encoder.max_length,
            objective.target_tensor(context.validation.targets),
        )
    data = TextDataModule(
        train,
        valid,
        tokenizer.pad_token_id or 0,
        recipe.batch_size,
        recipe.eval_batch_size,
        recipe.seed,
        hardware.num_workers,
        recipe.pool_batches,
    )
    trainer_cfg = {"max_epochs": recipe.max_epochs, **context.trainer}
    if valid is None:
        trainer_cfg["limit_val_batches"] = 0
    total_steps = planned_steps(data.batches_per_epoch(hardware.processes), trainer_cfg)
    module = TextClassifierModule(
        model,
        loss,
        objective,
        recipe.optimizer,
        recipe.scheduler,
        total_steps,
        validation=context.validation_metrics if valid is not None else None,
        valid_targets=None
        if valid is None or context.validation is None
        else np.asarray(context.validation.targets),
        monitored=monitored_metrics(scheme, context) if valid is not None else (),
        layer_lr_decay=recipe.layer_lr_decay,
    )
    checkpoint_dir = context.checkpoint_dir or Path(tempfile.mkdtemp(prefix="toxmod-fit-"))
    last_checkpoint = context.last_checkpoint or checkpoint_dir / LAST_CHECKPOINT_NAME
    averaged = recipe.weight_averaging != "none"
    callbacks, best = _callbacks(
        checkpoint_dir, last_checkpoint, scheme, context, has_valid=valid is not None, averaged=averaged
    )
    if averaged:
        from toxmod.models.transformer.callbacks import AveragedWeights

        start = int(recipe.averaging_start * total_steps)
        callbacks.insert(0, AveragedWeights(recipe.weight_averaging, start, recipe.averaging_decay))
    options: dict[str, Any] = dict(  # trainer.* from config: checked by Lightning itself
        accelerator=hardware.accelerator,
        devices=hardware.devices,
        strategy=hardware.strategy,
        precision=hardware.precision,
        logger=_logger(context),
        callbacks=[*callbacks, *context.callbacks],
        default_root_dir=str(checkpoint_dir.parent),
        enable_model_summary=False,
        enable_progress_bar=sys.stdout.isatty(),
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        **trainer_cfg,
    )
    trainer = pl.Trainer(**options)
    ckpt_path = None
    if context.resume_from:
        read_checkpoint(context.resume_from, mmap=True)  # refused in one line unless it is plain data
        ckpt_path = str(context.resume_from)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)

    best_path = best.best_model_path if best is not None and best.best_model_path else None
    kept = _kept_besides_best(module, best, best_path, last_checkpoint, context.checkpoint)
    variants = tuple(
        dataclasses.replace(v, model=_trimmed(v.model, n_outputs, n_outputs + len(auxiliary_names), scheme))
        for v in kept
    )
    if best_path:
        module.load_state_dict(read_checkpoint(best_path)["state_dict"])
        score = best.best_model_score  # None in the parent process of spawned DDP workers
        shown = f" ({best.monitor}={float(score):.4f})" if score is not None else ""
        console.print(f"kept {Path(best_path).stem}{shown}")
    elif valid is not None:
        epoch = data.batches_per_epoch(hardware.processes)
        console.print(
            f"no validation ran (it runs at the end of each {epoch}-step epoch): kept the last step's weights"
        )
    model = keep_first_outputs(module.model.cpu().eval(), n_outputs, n_outputs + len(auxiliary_names))
    _name_outputs(model, scheme.output_names)
    summary = {
        "train/rows_used": float(n_labelled),
        "train/unlabelled_transfer_texts": float(unlabelled),
        "train/auxiliary_targets": float(len(auxiliary_names)),
        **_progress(trainer, last_checkpoint),
        "train/planned_steps": float(total_steps),
    }
    if best is not None and best.best_model_score is not None:
        summary["valid/best_monitored"] = float(best.best_model_score)
    artifacts = {"checkpoints": Path(best_path)} if best_path else {}
    return FineTuned(model, tokenizer, FitReport(summary, artifacts), variants)


def _trimmed(model: Any, keep: int, total: int, scheme: LabelScheme) -> Any:
    model = keep_first_outputs(model.cpu().eval(), keep, total)
    _name_outputs(model, scheme.output_names)
    return model


def _kept_besides_best(
    module: Any, best: Any, best_path: str | None, last_checkpoint: Path, settings: CheckpointSpec
) -> list[KeptWeights]:
    """The other top-k checkpoints (by the monitor) and the last step's weights, each loaded into a
    copy of the network; the last step only when it is not a kept checkpoint's step already."""
    import copy

    from toxmod.models.transformer.lightning_parts import read_checkpoint

    if best_path is None:
        return []
    found: list[KeptWeights] = []
    steps = {int(read_checkpoint(best_path)["global_step"])}
    ranked = sorted(
        best.best_k_models.items(), key=lambda item: float(item[1]), reverse=settings.mode == "max"
    )
    sources: list[tuple[str, float | None, bool]] = [
        (path, float(score), False) for path, score in ranked if path != best_path
    ]
    if settings.keep_last and last_checkpoint.is_file():
        sources.append((str(last_checkpoint), None, True))
    for path, score, last in sources:
        state = read_checkpoint(path)
        step = int(state["global_step"])
        if step in steps:  # the last step is a top-k checkpoint already: that one is also "last"
            found = [dataclasses.replace(k, last=k.last or (last and k.step == step)) for k in found]
            continue
        steps.add(step)
        module.load_state_dict(state["state_dict"])
        found.append(KeptWeights(step, score, copy.deepcopy(module.model).cpu().eval(), last))
    return found


def _name_outputs(model: Any, names: list[str]) -> None:
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def _progress(trainer: Any, last_checkpoint: Path) -> dict[str, float]:
    """Steps and epochs trained; read from the last checkpoint when training ran in spawned DDP workers."""
    from toxmod.models.transformer.lightning_parts import read_checkpoint

    step, epoch = trainer.global_step, trainer.current_epoch
    if step == 0 and last_checkpoint.is_file():
        state = read_checkpoint(last_checkpoint, mmap=True)
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


def _logger(context: FitContext) -> Any:
    from toxmod.models.transformer.callbacks import TrackerLogger

    if context.metrics_logger is None or not context.metrics_logger.enabled:
        return False
    return TrackerLogger(context.metrics_logger)


def _callbacks(
    directory: Path,
    last_checkpoint: Path,
    scheme: LabelScheme,
    context: FitContext,
    has_valid: bool,
    averaged: bool = False,
) -> tuple[list[Any], Any]:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

    from toxmod.models.transformer.callbacks import EpochLines, LastCheckpoint

    settings = context.checkpoint
    monitor = checkpoint_monitor(scheme, context)
    # a bar on a terminal; off one (a log file, CI), one line per epoch
    callbacks: list[Any] = [
        RichProgressBar() if sys.stdout.isatty() else EpochLines(monitor if has_valid else None)
    ]
    best = None
    if has_valid:
        best = ModelCheckpoint(
            dirpath=str(directory),
            filename="best-step={step}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=settings.mode,
            save_top_k=max(int(settings.top_k), 1),
            # Lightning skips callbacks' checkpoint hooks in a weights-only save, so with weight averaging
            # the best checkpoint would hold the current weights, not the averaged ones it validated
            save_weights_only=settings.best_weights_only and not averaged,
        )
        callbacks.append(best)
        early = context.early_stopping
        if early.enabled:
            callbacks.append(
                EarlyStopping(
                    monitor=early.monitor or monitor,
                    mode=settings.mode,
                    patience=early.patience,
                    min_delta=early.min_delta,
                )
            )
    # After the best checkpoint (Lightning keeps checkpoint callbacks in this order, at the end), so
    # the epoch-end last checkpoint already holds this validation's best score.
    callbacks.append(LastCheckpoint(str(last_checkpoint), settings.every_n_steps))
    return callbacks, best
