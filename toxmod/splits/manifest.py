"""Frozen benchmark splits: ID lists plus a MANIFEST.json of SHA-256 hashes, written and verified."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.datasets import SPLIT_NAMES, LabeledDataset
from toxmod.errors import DamagedFileError, SplitError
from toxmod.files import read_json

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = "toxmod-split/1"


@dataclass
class Split:
    """Row positions (into one dataset) of each split, and how they were made."""

    rows: dict[str, np.ndarray]
    source: str
    notes: dict[str, Any] = field(default_factory=dict)

    def ids(self, dataset: LabeledDataset, name: str) -> list[str]:
        """The split's IDs, sorted (the order of ``<split>.ids.txt``)."""
        return sorted(str(i) for i in dataset.ids[self.rows[name]])

    def part(self, dataset: LabeledDataset, name: str) -> LabeledDataset:
        return dataset.subset(self.rows[name])


def ids_file_bytes(ids: list[str]) -> bytes:
    """The exact bytes of an ``<split>.ids.txt`` file: one ID per line, sorted, newline-terminated.

    This is the format of Janitr's upstream benchmark folders, so their published hashes reproduce.
    """
    return "".join(f"{i}\n" for i in ids).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_hash(ids_hashes: dict[str, str]) -> str:
    """One hash naming the whole split: SHA-256 over the per-split ID-list hashes."""
    canonical = json.dumps({name: ids_hashes[name] for name in SPLIT_NAMES}, sort_keys=True)
    return sha256_bytes(canonical.encode("utf-8"))


def build_manifest(dataset: LabeledDataset, split: Split) -> dict[str, Any]:
    """The MANIFEST contents for ``split`` of ``dataset`` (row counts, support, hashes)."""
    parts: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    for name in SPLIT_NAMES:
        ids = split.ids(dataset, name)
        hashes[name] = sha256_bytes(ids_file_bytes(ids))
        parts[name] = {
            "file": f"{name}.ids.txt",
            "rows": len(ids),
            "sha256": hashes[name],
            "label_support": dataset.scheme.support(dataset.targets[split.rows[name]]),
        }
    return {
        "format": MANIFEST_FORMAT,
        "dataset": dataset.name,
        "data_file": str(dataset.path),
        "data_sha256": dataset.sha256,
        "scheme": dataset.scheme.describe(),
        "source": split.source,
        "notes": split.notes,
        "splits": parts,
        "split_sha256": split_hash(hashes),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_split_folder(directory: str | Path, dataset: LabeledDataset, split: Split) -> dict[str, Any]:
    """Freeze ``split`` as ``{train,valid,calib,holdout}.ids.txt`` + MANIFEST.json; returns the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(dataset, split)
    for name in SPLIT_NAMES:
        (directory / f"{name}.ids.txt").write_bytes(ids_file_bytes(split.ids(dataset, name)))
    # The manifest goes last: a folder without one is visibly unfinished.
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_split_folder(
    directory: str | Path, dataset: LabeledDataset, allow_data_change: bool = False
) -> tuple[Split, dict[str, Any]]:
    """Load a frozen split folder, verifying every hash and that every ID is in ``dataset``."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise SplitError(
            f"frozen split {directory}: {MANIFEST_NAME} not found (is split.dir a split folder?)"
        )
    try:
        manifest = read_json(manifest_path)
        parts = manifest["splits"]
    except (DamagedFileError, KeyError, TypeError) as error:
        raise SplitError(f"{manifest_path}: not a toxmod split manifest ({error})") from error
    if not allow_data_change and manifest.get("data_sha256") not in (None, dataset.sha256):
        raise SplitError(
            f"{manifest_path}: data_sha256 {manifest['data_sha256'][:12]}… does not match data file "
            f"{dataset.path} ({dataset.sha256[:12]}…); the split was frozen on other data "
            "(split.allow_data_change=true to use it anyway)"
        )
    position = {str(i): p for p, i in enumerate(dataset.ids)}
    rows: dict[str, np.ndarray] = {}
    for name in SPLIT_NAMES:
        ids_path = directory / f"{name}.ids.txt"
        if name not in parts or not ids_path.is_file():
            raise SplitError(f"frozen split {directory}: {name}.ids.txt or its MANIFEST entry is missing")
        data = ids_path.read_bytes()
        if sha256_bytes(data) != parts[name].get("sha256"):
            raise SplitError(
                f"{manifest_path}: sha256 of {ids_path.name} does not match the manifest "
                f"(expected {str(parts[name].get('sha256'))[:12]}…, file has {sha256_bytes(data)[:12]}…)"
            )
        ids = data.decode("utf-8").splitlines()
        missing = [i for i in ids if i not in position]
        if missing:
            raise SplitError(
                f"frozen split {ids_path}: {len(missing)} IDs are not in data file {dataset.path} "
                f"(e.g. {missing[:3]})"
            )
        # Rows are kept in data-file order whatever the file order, so a split read back from a folder
        # scores, trains and bootstraps exactly like the split it was written from.
        rows[name] = np.sort(np.array([position[i] for i in ids], dtype=np.int64))
    seen: dict[int, str] = {}
    for name, positions in rows.items():
        for p in positions:
            if int(p) in seen:
                raise SplitError(
                    f"frozen split {directory}: ID {dataset.ids[p]!r} is in both {seen[int(p)]} and {name}"
                )
            seen[int(p)] = name
    expected = split_hash({name: parts[name]["sha256"] for name in SPLIT_NAMES})
    if manifest.get("split_sha256") != expected:
        raise SplitError(f"{manifest_path}: split_sha256 does not match the hashes of its ID lists")
    return Split(rows=rows, source=f"folder:{directory.resolve()}", notes=manifest.get("notes", {})), manifest
