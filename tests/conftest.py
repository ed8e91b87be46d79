"""Shared fixtures: the real shared datasets, a temporary MLflow SQLite store, SIGINT restored."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import DATASETS, JANITR
from toxmod.stages.train import TrainResult


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the shared datasets, every test that reads them is skipped with the reason."""
    if JANITR.is_file():
        return
    skip = pytest.mark.skip(reason=f"shared datasets not found at {DATASETS} (set TOXMOD_DATASETS)")
    for item in items:
        if item.get_closest_marker("data_free") is None:
            item.add_marker(skip)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """A fresh MLflow SQLite store and artifact root under tmp_path."""
    return {"uri": f"sqlite:///{tmp_path / 'mlruns.db'}", "artifact_root": str(tmp_path / "mlartifacts")}


@pytest.fixture
def sigint_restored() -> Iterator[None]:
    """An in-process Ctrl-C leaves SIGINT ignored (Lightning's graceful shutdown): put it back after."""
    previous = signal.getsignal(signal.SIGINT)
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
