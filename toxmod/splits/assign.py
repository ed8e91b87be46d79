"""Assigning rows to train/valid/calib/holdout: stratified, group-aware, and carve-outs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from toxmod.errors import ConfigError


def validated_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """Ratios as floats that sum to 1 (a one-line ConfigError otherwise)."""
    clean = {str(k): float(v) for k, v in ratios.items()}
    if any(v < 0 for v in clean.values()) or not np.isclose(sum(clean.values()), 1.0, atol=1e-6):
        raise ConfigError(f"split.ratios must be non-negative and sum to 1, got {clean}")
    return clean


def largest_remainder(count: int, ratios: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder allocation of ``count`` items to the ratios."""
    exact = {name: count * r for name, r in ratios.items()}
    sizes = {name: int(np.floor(v)) for name, v in exact.items()}
    leftover = count - sum(sizes.values())
    for name in sorted(exact, key=lambda n: exact[n] - sizes[n], reverse=True)[:leftover]:
        sizes[name] += 1
    return sizes


def stratified_assignment(
    keys: np.ndarray, ratios: Mapping[str, float], seed: int, min_stratum: int = 10
) -> np.ndarray:
    """Split name per row, stratified on ``keys`` (strata smaller than ``min_stratum`` are pooled)."""
    ratios = validated_ratios(ratios)
    keys = np.asarray(keys).astype(str)
    values, counts = np.unique(keys, return_counts=True)
    rare = set(values[counts < min_stratum])
    pooled = np.where(np.isin(keys, list(rare)), "__rare__", keys)
    rng = np.random.default_rng(seed)
    result = np.empty(len(keys), dtype=object)
    # Strata in sorted order, each shuffled with the same generator: deterministic for a seed.
    for stratum in sorted(set(pooled)):
        rows = np.flatnonzero(pooled == stratum)
        rng.shuffle(rows)
        start = 0
        for name, size in largest_remainder(len(rows), ratios).items():
            result[rows[start : start + size]] = name
            start += size
    return result


def group_assignment(groups: np.ndarray, ratios: Mapping[str, float], seed: int) -> np.ndarray:
    """Split name per row such that no group straddles two splits (greedy on row counts)."""
    ratios = validated_ratios(ratios)
    groups = np.asarray(groups).astype(str)
    names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    total = len(groups)
    filled = dict.fromkeys(ratios, 0)
    group_split = np.empty(len(names), dtype=object)
    for g in order:
        # The split furthest below its target share takes the next group.
        target = max(ratios, key=lambda s: ratios[s] * total - filled[s])
        group_split[g] = target
        filled[target] += int(sizes[g])
    return group_split[inverse]
