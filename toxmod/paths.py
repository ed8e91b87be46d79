"""Where the project, its configs, datasets and tracking store live (never relative to a module's cwd)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"  # shipped inside the package, so a wheel install composes too


def source_checkout() -> Path | None:
    """The source checkout the package is imported from (an editable install), else None."""
    candidate = PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").is_file() else None


def project_root() -> Path:
    """Where outputs and the MLflow store sit: ``TOXMOD_ROOT``, else the source checkout, else the cwd.

    An installed (non-editable) toxmod never writes into site-packages.
    """
    override = os.environ.get("TOXMOD_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    return source_checkout() or Path.cwd().resolve()


def datasets_root() -> Path:
    """The shared datasets folder (``TOXMOD_DATASETS`` overrides ``<root>/../shared/datasets``)."""
    override = os.environ.get("TOXMOD_DATASETS")
    if override:
        return Path(override).expanduser().resolve()
    return (project_root().parent / "shared" / "datasets").resolve()


def looks_like_path(name: str) -> bool:
    """A weights reference that names a folder rather than a hub repository (``org/name``)."""
    return name.startswith(("/", "~", ".")) or name.count("/") > 1 or Path(name).is_dir()


def user_roots(paths: Any) -> tuple[Path, ...]:
    """The folders a user's own ``paths`` config names (checkout or TOXMOD_ROOT, datasets, caches,
    outputs): what a run opened on this machine may point into."""
    keys = ("root", "datasets", "cache_dir", "output_dir", "multirun_dir")
    return tuple(Path(str(paths[k])).expanduser().resolve() for k in keys if paths.get(k))


def user_cache_dir() -> Path:
    """Where ``toxmod.load`` keeps downloaded runs and caches: ``TOXMOD_CACHE``, else
    ``$XDG_CACHE_HOME/toxmod`` (``~/.cache/toxmod``)."""
    override = os.environ.get("TOXMOD_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return (Path(base).expanduser() / "toxmod").resolve()


def user_conf_dir() -> Path | None:
    """A user's own config folder, joined to Hydra's search path: ``TOXMOD_CONF``, else ``./conf``
    in the current directory (``conf/model/my_model.yaml`` is then ``model=my_model``)."""
    override = os.environ.get("TOXMOD_CONF")
    candidate = Path(override).expanduser() if override else Path.cwd() / "conf"
    return candidate.resolve() if candidate.is_dir() else None
