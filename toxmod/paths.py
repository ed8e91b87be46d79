"""Where the project, its configs, datasets and tracking store live (never relative to a module's cwd)."""

from __future__ import annotations

import os
from pathlib import Path

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
