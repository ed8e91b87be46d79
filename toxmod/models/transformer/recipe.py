"""How an encoder is fine-tuned: batches, epochs, label weights, loss weights, optimizer, schedule, seed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from toxmod.errors import ConfigError, require_positive_int
from toxmod.models.transformer.loss_terms import check_loss_terms
from toxmod.models.transformer.objectives import LabelWeights
from toxmod.models.transformer.schedules import linear_warmup

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)


@dataclass(frozen=True)
class FineTuneRecipe:
    """``model.*`` training settings. ``optimizer`` / ``scheduler`` are partial factories (Hydra
    ``_partial_`` configs); ``max_epochs`` is used when ``trainer.max_epochs`` is not set;
    ``auxiliary_weight`` weighs the ``data.auxiliary`` heads' loss (0: no heads are built);
    ``layer_lr_decay`` < 1 gives lower layers smaller learning rates; ``max_train_rows`` trains on a
    seeded subset of the train split (the split and its hash unchanged); ``weight_averaging`` averages
    the weights from ``averaging_start`` of the planned steps on (``ema``: exponential, ``swa``: equal),
    so validation, the kept checkpoints and the final model are the averaged network."""

    batch_size: int = 32
    eval_batch_size: int = 64
    max_epochs: int = 3
    label_weights: LabelWeights = "auto"
    auxiliary_weight: float = 1.0
    optimizer: OptimizerFactory = default_optimizer
    scheduler: SchedulerFactory = linear_warmup
    layer_lr_decay: float = 1.0
    pool_batches: int = 50
    max_train_rows: int | None = None
    loss_terms: Mapping[str, float | None] | None = None  # null: every term with inputs (loss_terms.py)
    seed: int = 0
    weight_averaging: str = "none"  # none | ema | swa: validate, checkpoint and keep averaged weights
    averaging_decay: float = 0.99  # ema: the weight of the running average at each step (~100-step horizon)
    averaging_start: float = 0.5  # the share of the planned steps after which averaging starts

    AVERAGING = ("none", "ema", "swa")

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_epochs", "pool_batches"):
            require_positive_int(f"model.{name}", getattr(self, name))
        if self.max_train_rows:  # null or 0: every train row
            require_positive_int("model.max_train_rows", self.max_train_rows)
        if self.auxiliary_weight < 0:
            raise ConfigError(f"model.auxiliary_weight={self.auxiliary_weight}; expected a weight >= 0")
        check_loss_terms(self.loss_terms)
        if self.weight_averaging not in self.AVERAGING:
            raise ConfigError(
                f"model.weight_averaging={self.weight_averaging}; expected one of {', '.join(self.AVERAGING)}"
            )
        if not 0.0 < self.averaging_decay < 1.0:
            raise ConfigError(f"model.averaging_decay={self.averaging_decay}; expected 0 < decay < 1")
        if not 0.0 <= self.averaging_start < 1.0:
            raise ConfigError(f"model.averaging_start={self.averaging_start}; expected a share in [0, 1)")
        if self.optimizer is None:  # null in config: the defaults
            object.__setattr__(self, "optimizer", default_optimizer)
        if self.scheduler is None:
            object.__setattr__(self, "scheduler", linear_warmup)

    def check_factories(self) -> None:
        """Build the optimizer and schedule once on a dummy parameter: a bad learning rate or schedule
        argument is reported with its config key before anything is trained."""
        dummy = [torch.nn.Parameter(torch.zeros(1))]
        try:
            optimizer = self.optimizer(dummy)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model.optimizer: {error}") from None
        try:
            self.scheduler(optimizer, total_steps=10)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model.scheduler: {error}") from None
