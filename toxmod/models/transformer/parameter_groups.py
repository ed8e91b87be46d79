"""Optimizer parameter groups: weight decay off for biases and norms, layer-wise learning-rate decay.

With ``layer_lr_decay`` d < 1 the classifier head keeps the optimizer's learning rate, the top encoder
layer gets ``lr * d``, the one below ``lr * d**2``, ... and the embeddings ``lr * d**(layers + 1)`` --
the lower, more general layers move less (ULMFiT / ELECTRA-style fine-tuning of small labelled sets).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from toxmod.errors import ConfigError

LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")
LR_SCALE_KEY = "lr_scale"


def parameter_depth(name: str, n_layers: int) -> int:
    """0 for embeddings, ``i + 1`` for encoder layer ``i``, ``n_layers + 1`` for everything above."""
    if "embeddings" in name:
        return 0
    match = LAYER_INDEX.search(name)
    return int(match.group(1)) + 1 if match else n_layers + 1


def parameter_groups(
    model: torch.nn.Module, weight_decay_exclude: tuple[str, ...], layer_lr_decay: float = 1.0
) -> list[dict[str, Any]]:
    """Groups for an optimizer factory: each carries ``lr_scale`` (apply with ``scale_learning_rates``)."""
    if not 0.0 < layer_lr_decay <= 1.0:
        raise ConfigError(f"model.layer_lr_decay={layer_lr_decay}; expected 0 < decay <= 1 (1 = off)")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    indices = [int(m.group(1)) for name, _ in named if (m := LAYER_INDEX.search(name))]
    n_layers = max(indices) + 1 if indices else 0
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in named:
        depth = parameter_depth(name, n_layers)
        no_decay = any(key in name for key in weight_decay_exclude)
        group = groups.setdefault(
            (depth, no_decay),
            {"params": [], LR_SCALE_KEY: layer_lr_decay ** (n_layers + 1 - depth)},
        )
        if no_decay:
            group["weight_decay"] = 0.0
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def scale_learning_rates(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Multiply each group's learning rate by its ``lr_scale`` (before a scheduler reads them)."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get(LR_SCALE_KEY, 1.0)
    return optimizer
