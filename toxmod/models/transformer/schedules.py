"""Learning-rate schedules as ``_partial_`` targets: ``scheduler(optimizer, total_steps=...)``.

``total_steps`` always spans the planned ``trainer.max_epochs``; ``trainer.max_steps`` only stops a
chunk early, so a run trained in chunks follows the same schedule as one trained in one go.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from toxmod.errors import ConfigError


def linear_warmup(optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.1) -> LambdaLR:
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero."""
    if not 0 <= warmup_ratio <= 1:
        raise ConfigError(f"model.scheduler.warmup_ratio={warmup_ratio}: expected 0 <= ratio <= 1")
    warmup = max(int(math.ceil(warmup_ratio * total_steps)), 0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

    return LambdaLR(optimizer, factor)


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    """No schedule (the optimizer's learning rate throughout)."""
    return LambdaLR(optimizer, lambda step: 1.0)
