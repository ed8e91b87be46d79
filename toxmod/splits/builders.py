"""Split builders named by ``split._target_``: the data's own frozen split, a split folder, or a new one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from toxmod.data.datasets import SPLIT_NAMES, LabeledDataset
from toxmod.errors import SplitError
from toxmod.splits.assign import group_assignment, largest_remainder, stratified_assignment
from toxmod.splits.manifest import Split, read_split_folder


def _rows_by_name(assignment: np.ndarray, positions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    positions = np.arange(len(assignment)) if positions is None else positions
    return {name: positions[assignment == name] for name in SPLIT_NAMES}


def frozen_split(
    dataset: LabeledDataset,
    dir: str | None = None,  # noqa: A002 - the config key users type is split.dir
    carve: Mapping[str, Any] | None = None,
    allow_data_change: bool = False,
) -> Split:
    """A frozen folder when ``dir`` is set, else the data's own split column (plus carve-outs of train)."""
    if dir:
        split, _ = read_split_folder(dir, dataset, allow_data_change=allow_data_change)
        return split
    if dataset.given_splits is None:
        raise SplitError(
            f"split=frozen needs split.dir=FOLDER or a split column in the data (data.split_column) "
            f"for dataset {dataset.name!r}; or use split=stratified"
        )
    rows = _rows_by_name(dataset.given_splits)
    notes: dict[str, Any] = {}
    if carve:
        rows, notes = _carve(dataset, rows, carve)
    empty = [name for name in SPLIT_NAMES if len(rows[name]) == 0]
    if empty:
        raise SplitError(
            f"data split column of {dataset.name!r} leaves {empty} empty; "
            "set data.split_carve (e.g. {valid: 0.1, calib: 0.1}) or use split=stratified"
        )
    return Split(rows=rows, source=f"column:{dataset.name}", notes=notes)


def _carve(
    dataset: LabeledDataset, rows: dict[str, np.ndarray], carve: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Stratified valid/calib carve-outs of other splits' rows (splits the data already has are kept).

    ``{valid: 0.05}`` takes 5% of train; ``{calib: {from: valid, fraction: 0.5}}`` takes half of valid
    (a benchmark with train/valid/test only); ``{calib: {from: holdout, fraction: 0.3}}`` takes 30% of
    the holdout -- calibration data drawn like the data the thresholds will meet.
    """
    seed = int(carve.get("seed", 0))
    sources: dict[str, dict[str, float]] = {}
    for name in ("valid", "calib"):
        spec = carve.get(name)
        if spec is None or len(rows[name]):
            continue
        source, fraction = (
            ("train", spec) if not isinstance(spec, Mapping) else (spec["from"], spec["fraction"])
        )
        if source not in SPLIT_NAMES or source == name:
            others = [n for n in SPLIT_NAMES if n != name]
            raise SplitError(f"data.split_carve.{name}.from={source!r}; carve it from one of {others}")
        if not len(rows[source]):
            raise SplitError(f"data.split_carve.{name}.from={source}: the data has no {source} rows to carve")
        sources.setdefault(str(source), {})[name] = float(fraction)
    carved, notes = dict(rows), {}
    for source, fractions in sources.items():
        pool = rows[source]
        ratios = {source: 1.0 - sum(fractions.values()), **fractions}
        keys = dataset.scheme.stratification_keys(dataset.targets[pool])
        assignment = stratified_assignment(keys, ratios, seed=seed)
        for name in ratios:
            carved[name] = pool[assignment == name]
        notes[f"carved_from_{source}"] = {**fractions, "seed": seed}
    return carved, notes


def stratified_split(
    dataset: LabeledDataset, ratios: Mapping[str, float], seed: int = 42, dedupe: bool = True
) -> Split:
    """A new split from ratios and a seed: de-duplicated by normalized text, stratified on the labels.

    When the data has groups (``data.group_column``), whole groups are assigned instead.
    """
    positions = np.arange(len(dataset))
    notes: dict[str, Any] = {"seed": int(seed), "ratios": {k: float(v) for k, v in ratios.items()}}
    if dedupe:
        first_seen: dict[str, int] = {}
        for p, text in enumerate(dataset.normalized_texts):
            first_seen.setdefault(text, p)
        positions = np.array(sorted(first_seen.values()), dtype=np.int64)
        notes["deduplicated_rows"] = int(len(dataset) - len(positions))
    if dataset.groups is not None:
        assignment = group_assignment(dataset.groups[positions], ratios, seed)
        notes["grouped"] = True
    else:
        keys = dataset.scheme.stratification_keys(dataset.targets[positions])
        assignment = stratified_assignment(keys, ratios, seed)
    return Split(rows=_rows_by_name(assignment, positions), source=f"stratified:seed={seed}", notes=notes)


def sampled_split(dataset: LabeledDataset, split: Split, sizes: Mapping[str, int], seed: int = 0) -> Split:
    """``split.sample``: a stratified subsample of the named splits, e.g. ``{calib: 500, holdout: 1000}``
    (for models that take seconds per text). Row order stays data-file order; the sample is a new split
    with its own hash, so only runs with the same sample are compared."""
    rows, notes = dict(split.rows), dict(split.notes)
    rng = np.random.default_rng(seed)
    for name, size in sizes.items():
        if name not in SPLIT_NAMES:
            raise SplitError(f"split.sample.{name}: not a split ({', '.join(SPLIT_NAMES)})")
        pool = rows[name]
        if int(size) < 1 or int(size) >= len(pool):
            continue
        keys = dataset.scheme.stratification_keys(dataset.targets[pool])
        strata, counts = np.unique(keys, return_counts=True)
        take = largest_remainder(int(size), {s: c / len(pool) for s, c in zip(strata, counts)})
        chosen = [rng.choice(pool[keys == s], size=take[s], replace=False) for s in strata]
        rows[name] = np.sort(np.concatenate(chosen))
    notes["sample"] = {**{str(k): int(v) for k, v in sizes.items()}, "seed": int(seed)}
    return Split(rows=rows, source=f"{split.source}+sample", notes=notes)
