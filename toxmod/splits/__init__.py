"""Splits: building, freezing and verifying benchmark splits, and checking them for leakage."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from toxmod.data.datasets import LabeledDataset
from toxmod.errors import ConfigError
from toxmod.spec import SplitSpec
from toxmod.splits.builders import sampled_split
from toxmod.splits.leakage import enforce_no_leakage, leakage_report, purge_train_leaks
from toxmod.splits.manifest import Split, build_manifest, read_split_folder, write_split_folder

LEAK_POLICIES = ("refuse", "purge_train")


def frozen_split_config(folder: Path, allow_leakage: bool = False) -> dict[str, Any]:
    """The ``split`` config that reads a frozen split folder back as it is (a run's ``split/``: export
    and every run built on one use the rows, and so the hash, of the run they come from)."""
    return {
        "_target_": "toxmod.splits.builders.frozen_split",
        "name": "frozen",
        "dir": str(folder.resolve()),
        "carve": None,
        "allow_data_change": False,
        "on_leak": "refuse",
        "allow_leakage": allow_leakage,
    }


def prepare_split(spec: SplitSpec, dataset: LabeledDataset) -> tuple[Split, dict[str, Any]]:
    """Build the split ``spec`` names, apply the leak policy; return it with its leakage report."""
    split = split_builder(spec.target)(dataset, **spec.arguments)
    if spec.on_leak not in LEAK_POLICIES:
        raise ConfigError(f"split.on_leak={spec.on_leak!r}; expected one of {list(LEAK_POLICIES)}")
    if spec.on_leak == "purge_train":
        split = purge_train_leaks(dataset, split)
    if spec.sample:
        split = sampled_split(dataset, split, spec.sample, spec.sample_seed)
    report = leakage_report(dataset, split)
    enforce_no_leakage(report, allow_leakage=spec.allow_leakage)
    return split, report


def split_builder(target: str) -> Any:
    """The function ``split._target_`` names (``module.function``); one line when there is none."""
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"split._target_={target!r}: no such function ({error})") from None


__all__ = [
    "Split",
    "build_manifest",
    "frozen_split_config",
    "leakage_report",
    "prepare_split",
    "read_split_folder",
    "write_split_folder",
]
