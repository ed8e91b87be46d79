"""The ``split`` group: which code assigns rows to train/valid/calib/holdout, and what is done about leaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class SplitSpec(Spec):
    """A split builder (``_target_``) with its own arguments, and the policy every split shares."""

    GROUP = "split"
    OPTION_KEYS = "arguments"

    # the builder: split=frozen reads the data's split or a folder, split=stratified draws one
    target: str = setting()
    name: str = setting()
    on_leak: str = setting()  # refuse | purge_train
    allow_leakage: bool = setting()
    sample: dict[str, int] | None = setting()  # a stratified subsample of some splits ({calib: 500})
    sample_seed: int = setting()
    arguments: dict[str, Any] = setting()  # the builder's own keys (dir, carve, ratios, seed, ...)
