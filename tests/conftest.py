"""Shared fixtures: the real shared datasets and a temporary MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import DATASETS, JANITR


@pytest.fixture(scope="session", autouse=True)
def _require_shared_data() -> None:
    if not JANITR.is_file():
        pytest.exit(f"shared datasets not found at {DATASETS} (set TOXMOD_DATASETS)", returncode=3)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A fresh MLflow SQLite store and artifact root under tmp_path."""
    return {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}", "artifact_root": str(tmp_path / "mlartifacts")}
