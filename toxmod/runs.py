"""The run record: what a finished run directory holds, and the small helpers that write it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.datasets import LabeledDataset
from toxmod.models.base import Scorer, artifact_size_bytes
from toxmod.tracking import Tracker

EVALUATION_SPLIT = "holdout"
HOLDOUT_EVAL_FILE = "holdout_eval.json"
THRESHOLDS_FILE = "thresholds.json"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
FAILED_FILE = "FAILED"
MODEL_DIR = "model"
SPLIT_DIR = "split"
LEAKAGE_FILE = "leakage.json"
TRACKING_FILE = "tracking.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"


def git_sha(root: Path) -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def record_failure(run_dir: Path, error: BaseException) -> None:
    """Write ``FAILED`` (why the run stopped) into ``run_dir``; a Ctrl-C also prints how to continue it."""
    from toxmod.errors import is_interrupt
    from toxmod.reports import console

    if is_interrupt(error):
        message = "interrupted (Ctrl-C)"
        if (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
            message += f"; continue it with resume={run_dir}"
        console.print(message)
    else:
        message = f"{type(error).__name__}: {error}"
    (run_dir / FAILED_FILE).write_text(message + "\n")


def write_json(path: Path, payload: Any) -> Path:
    """Write JSON (NaN written as null) and return the path."""
    path.write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=False) + "\n")
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True)
class ScoredSplit:
    """A split's encoded targets, the model's scores for it, and how long scoring took."""

    targets: np.ndarray
    scores: np.ndarray
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return len(self.targets) / self.seconds if self.seconds > 0 else float("nan")


def score_split(scorer: Scorer, part: LabeledDataset) -> ScoredSplit:
    """Score one split through the scoring interface, timing it."""
    start = time.perf_counter()
    scores = scorer.predict_scores(list(part.texts))
    return ScoredSplit(part.targets, scores, time.perf_counter() - start)


def prefixed(split: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """``{"scam/recall": x}`` -> ``{"holdout/scam/recall": x}``."""
    return {f"{split}/{name}": value for name, value in metrics.items()}


def holdout_eval_record(
    split_sha256: str,
    data_sha256: str,
    model: str,
    thresholds: Mapping[str, float],
    metrics: Mapping[str, float],
) -> dict[str, Any]:
    """The contents of ``holdout_eval.json``: the holdout metrics, without their ``holdout/`` prefix."""
    prefix = f"{EVALUATION_SPLIT}/"
    return {
        "split_sha256": split_sha256,
        "data_sha256": data_sha256,
        "model": model,
        "thresholds": dict(thresholds),
        "metrics": {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)},
    }


def model_size_metrics(scorer: Scorer, model_dir: Path) -> dict[str, float]:
    """The saved model's size, plus full/quantized sizes for models that export both (fastText)."""
    sizes = {"model_size_bytes": float(artifact_size_bytes(model_dir))}
    for attribute in ("full_size_bytes", "quantized_size_bytes"):
        if getattr(scorer, attribute, None) is not None:
            sizes[f"model_{attribute}"] = float(getattr(scorer, attribute))
    return sizes


def finish_run_record(
    run_dir: Path, tracker: Tracker, metrics: Mapping[str, float], record: dict[str, Any]
) -> None:
    """Write metrics, log everything to the tracker, then ``holdout_eval.json`` last: it marks "finished"."""
    write_json(run_dir / METRICS_FILE, metrics)
    # Trainer-driven runs log the final numbers at their last step, after the epoch curves.
    tracker.log_metrics(metrics, step=int(metrics.get("train/global_steps", 0)))
    tracker.log_artifacts(run_dir / MODEL_DIR, MODEL_DIR)
    tracker.log_artifacts(run_dir / SPLIT_DIR, SPLIT_DIR)
    for file_name in (THRESHOLDS_FILE, METRICS_FILE, CONFIG_FILE, LEAKAGE_FILE):
        tracker.log_artifact(run_dir / file_name)
    write_json(run_dir / HOLDOUT_EVAL_FILE, record)
    tracker.log_artifact(run_dir / HOLDOUT_EVAL_FILE)
