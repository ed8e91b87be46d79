"""The ``paths`` group: where outputs, caches and downloads live. Never the job's: a run resumed on
another machine (or in another checkout) writes where that command says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toxmod.spec.fields import Spec, setting


@dataclass(frozen=True)
class PathsSpec(Spec):
    """Absolute folders (``~`` expanded), resolved from ``conf/paths`` and the environment."""

    GROUP = "paths"

    root: Path = setting(job=False)  # the checkout (TOXMOD_ROOT overrides)
    datasets: Path = setting(job=False)  # the shared datasets
    output_dir: Path = setting(job=False)  # run directories
    multirun_dir: Path = setting(job=False)  # sweep directories
    searches_dir: Path = setting(job=False)  # Optuna studies of searches
    cache_dir: Path = setting(job=False)  # content-addressed caches (teacher outputs, cross-fits)
    downloads: Path = setting(job=False)  # MLflow runs opened by id
