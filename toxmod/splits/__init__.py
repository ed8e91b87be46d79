"""Splits: building, freezing and verifying benchmark splits, and checking them for leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig

from toxmod.config import as_dict
from toxmod.data.datasets import LabeledDataset
from toxmod.errors import ConfigError
from toxmod.splits.builders import sampled_split
from toxmod.splits.leakage import enforce_no_leakage, leakage_report, purge_train_leaks
from toxmod.splits.manifest import Split, build_manifest, read_split_folder, write_split_folder

LEAK_POLICIES = ("refuse", "purge_train")
_POLICY_KEYS = {"_target_", "name", "on_leak", "allow_leakage", "sample", "sample_seed"}


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


def prepare_split(cfg: DictConfig, dataset: LabeledDataset) -> tuple[Split, dict[str, Any]]:
    """Build the split named by ``cfg`` , apply the leak policy; return it with its leakage report."""
    builder = get_method(cfg._target_)
    kwargs = {k: v for k, v in as_dict(cfg).items() if k not in _POLICY_KEYS}
    split = builder(dataset, **kwargs)
    policy = cfg.on_leak
    if policy not in LEAK_POLICIES:
        raise ConfigError(f"split.on_leak={policy!r}; expected one of {list(LEAK_POLICIES)}")
    if policy == "purge_train":
        split = purge_train_leaks(dataset, split)
    if cfg.get("sample"):
        sizes = {k: int(v) for k, v in as_dict(cfg.sample).items()}
        split = sampled_split(dataset, split, sizes, int(cfg.get("sample_seed") or 0))
    report = leakage_report(dataset, split)
    enforce_no_leakage(report, allow_leakage=bool(cfg.allow_leakage))
    return split, report


__all__ = [
    "Split",
    "build_manifest",
    "frozen_split_config",
    "leakage_report",
    "prepare_split",
    "read_split_folder",
    "write_split_folder",
]
