"""The run record: what a run directory holds, how it is written, and how a finished run is opened again.

Every stage reads and writes run directories through ``RunDir`` (the one list of file names), so the
layout lives here and nowhere else. ``holdout_eval.json`` marks a finished run: it is written last,
after the tracking store has the run FINISHED (``mark_finished``), so a run killed at any point is
never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.config import LAUNCHER_FILES
from toxmod.errors import ConfigError, DamagedFileError, is_interrupt
from toxmod.files import (
    file_sha256,
    listed_files,
    read_config_yaml,
    read_json,
    refuse_links_out,
    require_keys,
    verify_listed,
)
from toxmod.progress import console
from toxmod.redact import redact
from toxmod.trusted import check_targets

EVALUATION_SPLIT = "holdout"


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (a training run, a DAPT run, or a downloaded copy of one)."""

    path: Path
    checkpoint: str | None = None  # step-<n>: model and thresholds are that kept checkpoint's

    MODEL = "model"
    THRESHOLDS = "thresholds.json"
    CALIBRATION = "calibration.json"  # calibration=temperature: temperatures and valid ECE before/after
    METRICS = "metrics.json"
    HOLDOUT_EVAL = "holdout_eval.json"
    CONFIG = "config.yaml"
    FAILED = "FAILED"
    SPLIT = "split"
    LEAKAGE = "leakage.json"
    TRACKING = "tracking.json"
    CHECKPOINTS = "checkpoints"
    LAST_CHECKPOINT = "last.ckpt"
    # Config groups always taken from the current command, never rebuilt from a run's config.yaml
    # (a resumed chunk gets the command's callbacks): their _target_s need no check.
    COMMAND_ONLY = ("callbacks",)
    PENDING = ".pending"  # the finished marker waits here until the tracking store has the run FINISHED
    DAPT_RECORD = "dapt.json"
    DAPT_MODEL = "dapt_model"
    PLOTS = "plots"  # PNGs: PR curves, score histograms, reliability, confusion, training curves
    PREDICTIONS = "predictions"  # <split>.parquet: id, targets and scores per row (paired comparisons)
    BREAKDOWN = "breakdown"  # slices.csv, bias.csv: the holdout by slice and identity (evaluation.*)
    CROSSFIT = "crossfit"  # crossfit.folds: out-of-fold train scores, fold of each row (models.crossfit)
    CHECKPOINT_MODELS = "checkpoint_models"  # step-<n>/: model, thresholds.json, checkpoint.json; index.json
    MANIFEST = "manifest.json"  # every file a finished run is opened with, by SHA-256 (``run_manifest``)
    ENVIRONMENT = "environment.json"  # Python, OS, library versions, CPU and ISA, threads, GPU
    MARKER = "toxmod_run.json"  # toxmod made this folder: its token, also the tracking run's ``run_token``
    # Not in the manifest: what changes after the run finished, what no opener reads (checkpoints are
    # read on resume, as weights only), the member runs an ensemble trained (each has its own), and
    # what the launcher or a sweep writes beside the run.
    UNLISTED = (MANIFEST, CHECKPOINTS, FAILED, PENDING, "members", *LAUNCHER_FILES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def model(self) -> Path:
        return self._checkpoint_folder / self.MODEL

    @property
    def thresholds(self) -> Path:
        return self._checkpoint_folder / self.THRESHOLDS

    @property
    def _checkpoint_folder(self) -> Path:
        return self.path / self.CHECKPOINT_MODELS / self.checkpoint if self.checkpoint else self.path

    def checkpoint_folder(self, name: str) -> Path:
        """Where a kept checkpoint's model, thresholds and numbers are (``step-<n>``)."""
        return self.path / self.CHECKPOINT_MODELS / name

    def at_checkpoint(self, choice: str | int | None) -> RunDir:
        """This run opened at ``best`` (None: its own model), ``last`` or a step (``120``, ``step-120``);
        a checkpoint the run did not keep is one line listing those it kept."""
        if choice is None or str(choice) == "best":
            return RunDir(self.path)
        index_file = self.path / self.CHECKPOINT_MODELS / "index.json"
        index = read_json(index_file) if index_file.is_file() else {}
        try:
            best, last = (None if index.get(k) is None else int(index[k]) for k in ("best_step", "last_step"))
            kept = [int(step) for step in index.get("steps", [])]
        except (TypeError, ValueError, AttributeError):
            raise DamagedFileError(f"{index_file}: expected whole step numbers") from None
        wanted = checkpoint_choice(choice, f" (kept: {_kept(best, kept)})")
        step = last if wanted == "last" else wanted
        if step is None:  # last, of a run without kept checkpoints: its model is its last
            return RunDir(self.path)
        if step == best:
            return RunDir(self.path)
        if step not in kept:
            raise ConfigError(
                f"checkpoint={choice}: {self.path} kept no such checkpoint (kept: {_kept(best, kept)})"
            )
        return RunDir(self.path, f"step-{step}")

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def holdout_eval(self) -> Path:
        return self.path / self.HOLDOUT_EVAL

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def failed(self) -> Path:
        return self.path / self.FAILED

    @property
    def split(self) -> Path:
        return self.path / self.SPLIT

    @property
    def leakage(self) -> Path:
        return self.path / self.LEAKAGE

    @property
    def tracking(self) -> Path:
        return self.path / self.TRACKING

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / self.LAST_CHECKPOINT

    @property
    def finished(self) -> bool:
        """The run's result marker is in place: ``holdout_eval.json`` (training) or ``dapt.json`` (DAPT)."""
        return self.holdout_eval.is_file() or (self.path / self.DAPT_RECORD).is_file()

    def tracking_record(self) -> dict[str, Any]:
        """``tracking.json`` (run id, input hashes, job key, process), or {} when absent."""
        if not self.tracking.is_file():
            return {}
        record = read_json(self.tracking)
        require_keys(self.tracking, record, ())
        return record

    def saved_config(self) -> dict[str, Any] | None:
        """The run's ``config.yaml`` as plain dicts and lists (None when absent), checked: it may name
        only toxmod's own classes, torch optimizers and Lightning callbacks; damaged YAML is a one-line
        error."""
        if not self.config.is_file():
            return None
        cfg = read_config_yaml(self.config)
        if not isinstance(cfg, dict):
            raise DamagedFileError(f"{self.config}: not a config mapping")
        check_targets(cfg, str(self.config), self.COMMAND_ONLY)
        return cfg


def checkpoint_choice(choice: str | int | None, hint: str = "") -> str | int:
    """``checkpoint=``: ``best`` (also None), ``last`` or a step number (``120`` or ``step-120``);
    anything else is one line (``hint``: what the run kept)."""
    wanted = "best" if choice is None else str(choice)
    if wanted in ("best", "last"):
        return wanted
    step = wanted.removeprefix("step-")
    if not step.isdigit():
        raise ConfigError(f"checkpoint={choice}: expected best, last or a step number{hint}")
    return int(step)


def _kept(best: Any, steps: list[int]) -> str:
    shown = [f"best (step {best})"] if best is not None else ["best"]
    return ", ".join([*shown, *(f"step {s}" for s in steps)])


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


def write_tracking(run: RunDir, run_id: str | None, **values: Any) -> None:
    """``tracking.json``: the tracking run id, the inputs' hashes, the job key and the process."""
    process = {"pid": os.getpid(), "host": socket.gethostname()}
    write_json(run.tracking, {"run_id": run_id, **values, **process})


def record_failure(run: RunDir, error: BaseException) -> None:
    """Write ``FAILED`` (why the run stopped); a Ctrl-C also prints how to continue it."""
    if is_interrupt(error):
        message = "interrupted (Ctrl-C)"
        if run.last_checkpoint.is_file():  # the entry point says "interrupted"; this adds how to go on
            message += f"; continue it with resume={run.path}"
            console.print(message)
    else:
        message = f"{type(error).__name__}: {error}"
    try:
        run.failed.write_text(redact(message) + "\n")
    except OSError:  # a full disk: the tracking store (or `toxmod.runs gc`) still says FAILED
        run.failed.unlink(missing_ok=True)


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


def finish_run_record(
    run: RunDir, tracker: Any, metrics: Mapping[str, float], record: dict[str, Any], step: int = 0
) -> None:
    """Write metrics, log everything to the tracker, and stage ``holdout_eval.json`` for ``mark_finished``.

    ``step``: the training step the final numbers belong to (after a trainer's epoch curves).
    """
    write_json(run.metrics, metrics)
    tracker.log_metrics(metrics, step=step)
    tracker.log_artifacts(run.model, RunDir.MODEL)
    tracker.log_artifacts(run.split, RunDir.SPLIT)
    for path in (run.thresholds, run.metrics, run.config, run.leakage, run.tracking, run / RunDir.MARKER):
        if path.is_file():
            tracker.log_artifact(path)
    if (run / RunDir.ENVIRONMENT).is_file():
        tracker.log_artifact(run / RunDir.ENVIRONMENT)
    if (run / RunDir.CALIBRATION).is_file():
        tracker.log_artifact(run / RunDir.CALIBRATION)
    for folder in (RunDir.PLOTS, RunDir.PREDICTIONS, RunDir.BREAKDOWN, RunDir.CROSSFIT):
        if (run / folder).is_dir():
            tracker.log_artifacts(run / folder, folder)
    marker = stage_marker(run, RunDir.HOLDOUT_EVAL, record)
    tracker.log_artifact(marker)
    tracker.log_artifact(write_manifest(run, {RunDir.HOLDOUT_EVAL: file_sha256(marker)}))


def write_manifest(run: RunDir, staged: Mapping[str, str]) -> Path:
    """``manifest.json``: the SHA-256 of every file of the run (but ``RunDir.UNLISTED``), and of the
    ``staged`` markers under the names they will have; opening the run checks it (``verify_run``)."""
    files = {**listed_files(run.path, skip=RunDir.UNLISTED), **staged}
    return write_json(run / RunDir.MANIFEST, {"files": dict(sorted(files.items()))})


def verify_run(run: RunDir) -> None:
    """Every file of a finished run is the one it wrote: listed in ``manifest.json`` with its SHA-256,
    and nothing unlisted beside it (a planted or swapped file is refused, one line naming it)."""
    manifest = run / RunDir.MANIFEST
    if not manifest.is_file():
        raise DamagedFileError(
            f"{manifest}: missing; a finished run lists its files with their SHA-256 (a run made "
            "before toxmod wrote manifests: re-run it, or re-evaluate it from its own checkout)"
        )
    record = read_json(manifest)
    require_keys(manifest, record, ("files",))
    skip = [*RunDir.UNLISTED, RunDir.CHECKPOINTS]
    if isinstance(record["files"], dict) and RunDir.TRACKING not in record["files"]:
        skip.append(RunDir.TRACKING)  # a run recorded before its manifest listed tracking.json
    verify_listed(run.path, record["files"], manifest, skip=skip)


def write_predictions(
    run: RunDir, split: str, ids: Any, targets: Any, scores: Any, output_names: list[str]
) -> Path:
    """``predictions/<split>.parquet``: one row per text with its id, target(s) and every output's
    score, so runs on the same split can be compared row by row (paired bootstrap) without re-scoring."""
    import numpy as np
    import pandas as pd

    targets = np.asarray(targets)
    columns: dict[str, Any] = {"id": np.asarray(ids).astype(str)}
    if targets.ndim == 1:
        columns["target"] = targets
    else:
        columns.update({f"target/{name}": targets[:, j] for j, name in enumerate(output_names)})
    columns.update({f"score/{name}": np.asarray(scores)[:, j] for j, name in enumerate(output_names)})
    folder = run / RunDir.PREDICTIONS
    folder.mkdir(exist_ok=True)
    path = folder / f"{split}.parquet"
    pd.DataFrame(columns).to_parquet(path, index=False)
    return path


def read_predictions(path: Path, output_names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``write_predictions`` wrote: ids, targets (a level index per row, or one column per
    output) and scores, in the file's row order; a missing column is a one-line error naming it."""
    import pandas as pd

    frame = pd.read_parquet(path)
    try:
        ids = frame["id"].to_numpy()
        scores = frame[[f"score/{name}" for name in output_names]].to_numpy(dtype=np.float64)
        if "target" in frame:
            targets = frame["target"].to_numpy()
        else:
            targets = frame[[f"target/{name}" for name in output_names]].to_numpy()
    except KeyError as error:
        raise DamagedFileError(f"{path}: column {error} is missing") from None
    return ids, targets, scores


def stage_marker(run: RunDir, name: str, payload: Any) -> Path:
    """Write a result marker (``holdout_eval.json``, ``dapt.json``) where it does not count yet.

    ``mark_finished`` moves it into the run directory once the tracking run has ended FINISHED.
    """
    pending = run.path / RunDir.PENDING
    pending.mkdir(exist_ok=True)
    return write_json(pending / name, payload)


def mark_finished(run: RunDir) -> None:
    """Move the staged markers into place: from now on the run counts as finished.

    Called after the tracking run has ended FINISHED; a run killed before this has no marker.
    """
    refuse_links_out(run.path)
    pending = run.path / RunDir.PENDING
    for staged in sorted(pending.iterdir()):
        os.replace(staged, run.path / staged.name)
    pending.rmdir()


def reopen(run: RunDir) -> None:
    """A resumed run is unfinished again until its new chunk ends: its markers are removed. A run
    folder with a link that leaves it is refused first (everything from here on writes into it)."""
    refuse_links_out(run.path)
    for marker in (run.holdout_eval, run.failed, run.path / RunDir.DAPT_RECORD):
        marker.unlink(missing_ok=True)
    shutil.rmtree(run.path / RunDir.PENDING, ignore_errors=True)
