"""``python -m toxmod.split data=... [split.seed=...] [out=FOLDER] [previous=OLD]``: freeze a benchmark split.

Builds the split named by the ``split`` group (stratified by default: de-duplicated, stratified on the
label combination), runs the leakage check, and writes ``{train,valid,calib,holdout}.ids.txt``,
``MANIFEST.json`` and ``leakage.json`` into ``out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from toxmod.config import run_entry_point
from toxmod.data import SPLIT_NAMES, build_dataset
from toxmod.errors import SplitError, exit_on_user_error
from toxmod.reports import console, rows_table
from toxmod.runs import LEAKAGE_FILE, write_json
from toxmod.splits import prepare_split, read_split_folder, write_split_folder
from toxmod.splits.leakage import compare_with_previous
from toxmod.splits.manifest import MANIFEST_NAME


def freeze(cfg: DictConfig) -> dict[str, Any]:
    """Make, check and write the split folder; returns its manifest."""
    dataset = build_dataset(cfg.data)
    split, report = prepare_split(cfg.split, dataset)
    out = Path(str(cfg.out))
    if (out / MANIFEST_NAME).exists():
        raise SplitError(
            f"{out} already holds a frozen split; frozen splits are never overwritten (choose out=...)"
        )
    if cfg.get("previous"):
        previous, _ = read_split_folder(cfg.previous, dataset, allow_data_change=True)
        report["previous"] = {"folder": str(cfg.previous), **compare_with_previous(dataset, split, previous)}
    manifest = write_split_folder(out, dataset, split)
    write_json(out / LEAKAGE_FILE, report)
    rows = [
        [name, part["rows"], *[part["label_support"].get(label, 0) for label in dataset.scheme.report_names]]
        for name, part in manifest["splits"].items()
    ]
    console.print(
        rows_table(f"{dataset.name} split -> {out}", ["split", "rows", *dataset.scheme.report_names], rows)
    )
    console.print(f"split_sha256 {manifest['split_sha256']}")
    if "previous" in report:
        console.print(f"against {cfg.previous}: {report['previous']}")
    return manifest


@hydra.main(version_base="1.3", config_path="../conf", config_name="split_cli")
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> Any:
    return freeze(cfg)


def main() -> Any:
    """Console entry point (``toxmod-split`` / ``python -m toxmod.split``)."""
    return run_entry_point("split_cli", _hydra_main)


__all__ = ["SPLIT_NAMES", "freeze", "main"]

if __name__ == "__main__":
    main()
