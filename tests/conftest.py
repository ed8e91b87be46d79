"""Shared fixtures: the real shared datasets, a temporary MLflow SQLite store, SIGINT restored."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import toxmod  # noqa: F401, I001 - first: its OpenBLAS kernel pin applies only before numpy is loaded
from tests.helpers import DATASETS, JANITR

# Runs opened by id are downloaded under TOXMOD_CACHE (else ~/.cache/toxmod): a folder of the tests' own.
os.environ.setdefault("TOXMOD_CACHE", tempfile.mkdtemp(prefix="toxmod-test-cache-"))

if TYPE_CHECKING:
    from toxmod.stages.train import TrainResult


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the shared datasets, every test that reads them is skipped with the reason -- unless
    ``TOXMOD_REQUIRE_DATASETS=1`` (CI, where the datasets are present): then their absence is an error."""
    if JANITR.is_file():
        return
    if os.environ.get("TOXMOD_REQUIRE_DATASETS") == "1":
        raise pytest.UsageError(f"TOXMOD_REQUIRE_DATASETS=1 but the shared datasets are not at {DATASETS}")
    skip = pytest.mark.skip(reason=f"shared datasets not found at {DATASETS} (set TOXMOD_DATASETS)")
    for item in items:
        if item.get_closest_marker("data_free") is None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with MLflow's schema and no runs, created once (MLflow's migrations
    take seconds; copying the file takes milliseconds)."""
    from toxmod.runs.store import open_client

    database = tmp_path_factory.mktemp("empty-store") / "mlruns.db"
    open_client(f"sqlite:///{database}").search_experiments()
    return database


@pytest.fixture
def store(tmp_path: Path, _empty_store: Path) -> dict[str, str]:
    """A new, empty MLflow SQLite store and artifact root of this test's own, under tmp_path."""
    shutil.copy(_empty_store, tmp_path / "mlruns.db")
    return {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}", "artifact_root": str(tmp_path / "mlartifacts")}


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """Ctrl-C as in a terminal for an in-process test (a test worker may ignore SIGINT), and put back
    after: an in-process Ctrl-C leaves SIGINT ignored (Lightning's graceful shutdown)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class SharedRun:
    """A finished run and the MLflow store it is recorded in."""

    result: TrainResult
    store: dict[str, str]


@pytest.fixture(scope="session")
def tiny_student_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """One tiny student (2 layers, hidden 32) trained for 2 epochs on a 600-row janitr slice and
    recorded in its own MLflow store; shared by the tests that only read a finished neural run."""
    from tests.helpers import JANITR_SLICE, TINY_STUDENT, compose_train, tracking_overrides
    from toxmod.stages.train import train

    root = tmp_path_factory.mktemp("tiny-student")
    store = {"uri": f"sqlite:///{root / 'mlruns.db'}", "artifact_root": str(root / "mlartifacts")}
    overrides = [*JANITR_SLICE, *TINY_STUDENT, "trainer.max_epochs=2", *tracking_overrides(store)]
    return SharedRun(train(compose_train(overrides), root / "run"), store)
