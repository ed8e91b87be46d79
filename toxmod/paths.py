"""Where the project, its datasets and its tracking store live (never relative to the cwd)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR.parent / "conf"


def project_root() -> Path:
    """The toxmod checkout (``TOXMOD_ROOT`` overrides); outputs and the MLflow store sit here."""
    override = os.environ.get("TOXMOD_ROOT")
    if override:
        return Path(override).expanduser().resolve()
    return PACKAGE_DIR.parent


def datasets_root() -> Path:
    """The shared datasets folder (``TOXMOD_DATASETS`` overrides ``<root>/../shared/datasets``)."""
    override = os.environ.get("TOXMOD_DATASETS")
    if override:
        return Path(override).expanduser().resolve()
    return (project_root().parent / "shared" / "datasets").resolve()
