"""The split stage: make a benchmark split, check it for leakage, freeze it as a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from toxmod.config import spec_of
from toxmod.data import build_dataset
from toxmod.errors import SplitError
from toxmod.progress import console
from toxmod.runs.record import RunDir, write_json
from toxmod.spec import DataSpec, SplitSpec
from toxmod.splits import prepare_split, read_split_folder, write_split_folder
from toxmod.splits.leakage import compare_with_previous
from toxmod.splits.manifest import MANIFEST_NAME
from toxmod.tables import rows_table


def freeze(cfg: DictConfig) -> dict[str, Any]:
    """Write ``{train,valid,calib,holdout}.ids.txt``, ``MANIFEST.json`` and ``leakage.json`` into ``out``.

    With ``previous=<folder>``, also how the new split relates to that older one. A folder that
    already holds a manifest is never overwritten. Returns the manifest.
    """
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, report = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    out = Path(str(cfg.out))
    if (out / MANIFEST_NAME).exists():
        raise SplitError(
            f"{out} already holds a frozen split; frozen splits are never overwritten (choose out=...)"
        )
    if cfg.get("previous"):
        previous, _ = read_split_folder(cfg.previous, dataset, allow_data_change=True)
        report["previous"] = {"folder": str(cfg.previous), **compare_with_previous(dataset, split, previous)}
    manifest = write_split_folder(out, dataset, split)
    write_json(out / RunDir.LEAKAGE, report)
    rows = [
        [name, part["rows"], *[part["label_support"].get(label, 0) for label in dataset.scheme.report_names]]
        for name, part in manifest["splits"].items()
    ]
    columns = ["split", "rows", *dataset.scheme.report_names]
    console.print(rows_table(f"{dataset.name} split -> {out}", columns, rows))
    console.print(f"split_sha256 {manifest['split_sha256']}")
    if "previous" in report:
        console.print(f"against {cfg.previous}: {report['previous']}")
    return manifest
