"""Helpers for the tests: dataset locations, tiny model settings, config composition, the CLI."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from toxmod.config import compose_config
from toxmod.paths import datasets_root, project_root

DATASETS = datasets_root()
JANITR = DATASETS / "janitr_crypto_scam" / "janitr.csv.gz"
DAVIDSON = DATASETS / "hate_speech_offensive_davidson" / "labeled_data.csv.gz"

# Small, fast model settings for training paths (the real configs, shrunk).
TINY_XGBOOST = [
    "model=tfidf_xgboost",
    "model.n_estimators=20",
    "model.linear_folds=2",
    "model.tree_features=2000",
    "model.max_features=20000",
]


# A tiny student that learns something in a few epochs on ~900 janitr rows (its scores spread out).
LEARNING_TINY_STUDENT = [
    "model=student",
    "student=tiny",
    "student.hidden=64",
    "student.intermediate=128",
    "model.batch_size=32",
    "model.max_epochs=4",
    "model.optimizer.lr=2e-3",
    "model.max_length=64",
]


# A tiny student for training paths: 2 layers, hidden 32 (student=tiny), short texts, small batches.
TINY_STUDENT = [
    "model=student",
    "student=tiny",
    "model.max_length=48",
    "model.batch_size=16",
    "model.eval_batch_size=64",
    "hardware.num_workers=0",
    "bootstrap=0",
]
JANITR_SLICE = ["data=janitr", "data.max_rows=600"]  # 377 train rows: 24 batches of 16 per epoch


def tracking_overrides(store: dict[str, str]) -> list[str]:
    return [f"tracking.uri={store['uri']}", f"tracking.artifact_root={store['artifact_root']}"]


def stored_runs(store: dict[str, str], sweep_parents: bool = False) -> list:  # list[mlflow.entities.Run]
    """Every model run in a test's MLflow store, across experiments (a sweep's parent run only if
    asked; never the evaluation runs ``toxmod.evaluate`` records)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    runs = [run for run in runs if run.data.tags.get("toxmod.kind") != "evaluation"]
    return [run for run in runs if sweep_parents or run.data.tags.get("sweep") != "parent"]


# What every run records besides its numbers (plots, serving latency, an MLflow pyfunc copy of the
# model) costs seconds per run; the tests of those features turn them back on (RECORD_EXTRAS_ON).
RECORD_EXTRAS_OFF = ["plots=false", "log_pyfunc=false", "latency.batch1_texts=0", "latency.batch64_texts=0"]
RECORD_EXTRAS_ON = ["plots=true", "log_pyfunc=true", "latency.batch1_texts=50", "latency.batch64_texts=128"]


def compose_train(overrides: list[str]):  # noqa: ANN201 - DictConfig
    return compose_config("train", ["hardware=cpu", "bootstrap=100", *RECORD_EXTRAS_OFF, *overrides])


def _kept_out_of_the_checkout(overrides: tuple[str, ...], module: str = "") -> tuple[str, ...]:
    """Point outputs and sweeps at a temporary folder unless the test says where (and, for train,
    leave out the per-run extras unless the test turns them on)."""
    if module == "train":  # after Hydra's leading flags (-m), before the test's own overrides
        first = next((i for i, o in enumerate(overrides) if not o.startswith("-")), len(overrides))
        overrides = (*overrides[:first], *RECORD_EXTRAS_OFF, *overrides[first:])
    output_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("paths.output_dir=")), None)
    if output_dir is None and not any(o.startswith("hydra.run.dir=") for o in overrides):
        output_dir = str(Path(tempfile.gettempdir()) / "toxmod-test-outputs")
        overrides = (*overrides, f"paths.output_dir={output_dir}")
    if output_dir and not any(o.startswith("paths.multirun_dir=") for o in overrides):
        # Never the checkout's multirun/: resume=last must not see a user's sweeps.
        overrides = (*overrides, f"paths.multirun_dir={output_dir}-multirun")
    return overrides


@dataclass(frozen=True)
class EntryResult:
    """What an entry point did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_entry(module: str, *overrides: str) -> EntryResult:
    """``python -m toxmod.<module> overrides...`` run in this process: the entry point's ``main()``
    with ``sys.argv`` set, its exit code and output captured (no interpreter start-up per call)."""
    overrides = _kept_out_of_the_checkout(overrides, module)
    stdout, stderr = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, [f"toxmod-{module}", *overrides]
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            entry = importlib.import_module(f"toxmod.{module}")
            if not hasattr(entry, "main"):  # a package run as `python -m toxmod.<package>`
                entry = importlib.import_module(f"toxmod.{module}.__main__")
            entry.main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        sys.argv = argv
    return EntryResult(code, stdout.getvalue(), stderr.getvalue())


def run_cli(module: str, *overrides: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m toxmod.<module> overrides...`` in a new process, as a user would (for what needs
    a process: the real exit code, signals, sweeps of several processes)."""
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PYTHONWARNINGS="ignore")
    overrides = _kept_out_of_the_checkout(overrides, module)
    return subprocess.run(
        [sys.executable, "-m", f"toxmod.{module}", *overrides],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or project_root(),
        timeout=600,
        # Ctrl-C handled as in a terminal, even when the tests run as a background job (which
        # starts with SIGINT ignored, and a child inherits that).
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def janitr_frame() -> pd.DataFrame:
    return pd.read_csv(JANITR, keep_default_na=False, dtype=str)


def davidson_slice(tmp_path: Path, n: int = 1500, seed: int = 0) -> Path:
    """A real Davidson slice written as CSV (with its original columns)."""
    frame = pd.read_csv(DAVIDSON, dtype=str, keep_default_na=False).sample(n=n, random_state=seed)
    path = tmp_path / "davidson_slice.csv"
    frame.to_csv(path, index=False)
    return path


def reseal(run_dir: Path) -> None:
    """Rewrite a run's ``manifest.json`` after a test changed its files, as an attacker who edits the
    manifest too would: what is checked after the manifest must hold on its own."""
    from toxmod.runs.record import RunDir, write_manifest

    write_manifest(RunDir(run_dir), {})
