"""Helpers for the tests: dataset locations, tiny model settings, config composition, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import lightning.pytorch as pl
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


def tracking_overrides(store: dict[str, str]) -> list[str]:
    return [f"tracking.uri={store['uri']}", f"tracking.artifact_root={store['artifact_root']}"]


def stored_runs(store: dict[str, str]) -> list:  # list[mlflow.entities.Run]
    """Every run in a test's MLflow store, across experiments."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store["uri"])
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def compose_train(overrides: list[str]):  # noqa: ANN201 - DictConfig
    return compose_config("train", ["hardware=cpu", "bootstrap=100", *overrides])


def run_cli(module: str, *overrides: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m toxmod.<module> overrides...`` as a user would (outputs kept out of the checkout)."""
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PYTHONWARNINGS="ignore")
    output_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("paths.output_dir=")), None)
    if output_dir is None and not any(o.startswith("hydra.run.dir=") for o in overrides):
        output_dir = str(Path(tempfile.gettempdir()) / "toxmod-test-outputs")
        overrides = (*overrides, f"paths.output_dir={output_dir}")
    if output_dir and not any(o.startswith("paths.multirun_dir=") for o in overrides):
        # Never the checkout's multirun/: resume=last must not see a user's sweeps.
        overrides = (*overrides, f"paths.multirun_dir={output_dir}-multirun")
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


class CtrlCAtStep(pl.Callback):
    """Sends this process SIGINT ``presses`` times, as Ctrl-C does, right after optimizer step ``step``."""

    def __init__(self, step: int, presses: int = 1) -> None:
        self.step, self.presses = step, presses

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.presses):
                os.kill(os.getpid(), signal.SIGINT)
