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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from toxmod.calibration import Thresholds
from toxmod.config import check_targets
from toxmod.data import SPLIT_NAMES, LabeledDataset, build_dataset
from toxmod.errors import ConfigError, DamagedFileError, ToxmodError, is_interrupt
from toxmod.files import (
    file_lock,
    file_sha256,
    listed_files,
    read_json,
    refuse_links_out,
    require_keys,
    verify_listed,
)
from toxmod.models import Opening, Scorer, load_scorer
from toxmod.paths import datasets_root, looks_like_path, project_root, user_cache_dir, user_roots
from toxmod.progress import console
from toxmod.redact import redact
from toxmod.runs.store import NoStore, RunStore
from toxmod.splits import Split, read_split_folder

EVALUATION_SPLIT = "holdout"


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (a training run, a DAPT run, or a downloaded copy of one)."""

    path: Path

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
    MANIFEST = "manifest.json"  # every file a finished run is opened with, by SHA-256 (``run_manifest``)
    ENVIRONMENT = "environment.json"  # Python, OS, library versions, CPU and ISA, threads, GPU
    # Not in the manifest: what changes after the run finished, what no opener reads (checkpoints are
    # read on resume, as weights only), the member runs an ensemble trained (each has its own), and
    # what Hydra or a sweep writes beside the run.
    UNLISTED = (MANIFEST, TRACKING, CHECKPOINTS, FAILED, PENDING, "members", ".hydra", "job_status.json")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def thresholds(self) -> Path:
        return self.path / self.THRESHOLDS

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

    def saved_config(self) -> DictConfig | None:
        """The run's ``config.yaml`` (None when absent), checked: it may name only toxmod's own
        classes, torch optimizers and Lightning callbacks; damaged YAML is a one-line error."""
        if not self.config.is_file():
            return None
        try:
            cfg = OmegaConf.load(self.config)
        except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DamagedFileError(f"{self.config}: not a readable config ({reason})") from None
        if not isinstance(cfg, DictConfig):
            raise DamagedFileError(f"{self.config}: not a config mapping")
        check_targets(cfg, str(self.config), never_built=self.COMMAND_ONLY)
        return cfg


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
        if run.last_checkpoint.is_file():
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
    for path in (run.thresholds, run.metrics, run.config, run.leakage):
        tracker.log_artifact(path)
    if (run / RunDir.ENVIRONMENT).is_file():
        tracker.log_artifact(run / RunDir.ENVIRONMENT)
    if (run / RunDir.CALIBRATION).is_file():
        tracker.log_artifact(run / RunDir.CALIBRATION)
    for folder in (RunDir.PLOTS, RunDir.PREDICTIONS):
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
    verify_listed(run.path, record["files"], manifest, skip=(*RunDir.UNLISTED, RunDir.CHECKPOINTS))


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


@dataclass(frozen=True)
class LoadedRun:
    """A finished run rebuilt from its files: config, data, split, model, thresholds (notebooks too)."""

    directory: Path
    config: DictConfig
    dataset: LabeledDataset
    split: Split
    scorer: Scorer
    thresholds: Thresholds

    def part(self, subset: str) -> LabeledDataset:
        """The rows of one split (train, valid, calib or holdout)."""
        if subset not in SPLIT_NAMES:
            raise ConfigError(f"subset={subset!r}; expected one of {list(SPLIT_NAMES)}")
        return self.split.part(self.dataset, subset)

    def recorded_metrics(self, subset: str) -> dict[str, float]:
        """What the run recorded for ``subset`` (holdout: ``holdout_eval.json``; others: ``metrics.json``)."""
        run = RunDir(self.directory)
        if subset == EVALUATION_SPLIT:
            record = read_json(run.holdout_eval)
            require_keys(run.holdout_eval, record, ("metrics",))
            return record["metrics"]
        prefix = f"{subset}/"
        everything = read_json(run.metrics)
        require_keys(run.metrics, everything, ())
        return {k.removeprefix(prefix): v for k, v in everything.items() if k.startswith(prefix)}


def locate_run(ref: str | Path, store: RunStore | NoStore, cache_dir: Path) -> RunDir:
    """A local, finished run directory for ``ref``: a run directory, or a run id's files downloaded."""
    candidate = Path(ref).expanduser()
    if candidate.is_dir():
        run = RunDir(candidate)
        if not run.holdout_eval.is_file():
            raise ToxmodError(
                f"run directory {candidate} has no {RunDir.HOLDOUT_EVAL}: the run did not finish"
            )
        verify_run(run)
        return run
    if isinstance(store, NoStore):
        raise ConfigError(f"run={ref}: not a run directory (and tracking=none cannot look up run ids)")
    if str(ref).startswith("models:/"):  # a registered model version, e.g. models:/janitr@champion
        ref = store.resolve_model(str(ref))
    try:
        stored = store.get(str(ref))
    except ToxmodError:
        raise ToxmodError(f"run={ref}: neither a run directory nor a run id in {store.uri}") from None
    if not stored.finished:
        raise ToxmodError(f"MLflow run {ref} has status {stored.status}; only FINISHED runs can be opened")
    return _downloaded(store, stored.run_id, cache_dir)


def _downloaded(store: RunStore, run_id: str, cache_dir: Path) -> RunDir:
    """A finished run's files in ``cache_dir/<run id>``: an earlier copy that still checks out, else a
    fresh download (into ``.partial`` first, so a stopped download is never taken for a copy)."""
    run = RunDir(cache_dir / run_id)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / f"{run_id}.lock"):
        if run.path.is_dir():
            try:
                verify_run(run)
                return run
            except DamagedFileError:
                shutil.rmtree(run.path)
        partial = cache_dir / f"{run_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            verify_run(RunDir(store.download(run_id, partial)))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        partial.rename(run.path)
    return run


def downloads_dir(opening: Opening, cache_dir: Path | None = None) -> Path:
    """Where runs opened by id are downloaded: ``cache_dir`` when given, else ``runs/`` of the
    opener's cache (the user cache by default)."""
    return cache_dir or (opening.cache_dir or user_cache_dir()) / "runs"


def default_opening(cache_dir: Path | None = None) -> Opening:
    """What opening a run from Python gives it: no server or key, the user cache, this machine's
    toxmod folders (``TOXMOD_ROOT`` or the checkout, the datasets)."""
    return Opening(cache_dir=cache_dir or user_cache_dir(), roots=(project_root(), datasets_root()))


def opening_from_config(cfg: DictConfig, files: tuple[Path, ...] = ()) -> Opening:
    """The opener's side from an entry point's config: its ``model.*`` settings (``base_url``,
    ``api_key_env``, ``pretrained``), its cache folder and its folders (``paths``)."""
    given = OmegaConf.to_container(cfg.model, resolve=True) if "model" in cfg else {}
    settings = {k: v for k, v in (given or {}).items() if v is not None}  # type: ignore[union-attr]
    return Opening(
        settings=settings,
        cache_dir=Path(str(cfg.paths.cache_dir)),
        roots=user_roots(cfg.paths),
        files=tuple(files),
    )


def load_run(
    ref: str | Path,
    store: RunStore | NoStore | None = None,
    cache_dir: Path | None = None,
    allow_pickle: bool = False,
    opening: Opening | None = None,
    data_path: str | Path | None = None,
) -> LoadedRun:
    """Open a finished run (a run directory, or a run id with ``store``); split hashes are verified.

    Opening never runs code from the run: its config may name only toxmod's classes, its model is
    read from arrays, JSON and safetensors (``allow_pickle``: an older pickle-format model too),
    and its thresholds are matched to the scheme's decisions by name. Nor does the run choose what is
    read or sent elsewhere: its data file must lie in the opener's folders (``opening``) unless the
    opener names it (``data_path``), and a server, key variable or weights folder comes from ``opening``.
    """
    if store is None and not Path(ref).expanduser().is_dir():
        raise ConfigError(f"run={ref}: not a run directory (pass a store to open a run id)")
    opening = opening or default_opening()
    run = locate_run(ref, store or NoStore(), downloads_dir(opening, cache_dir))
    cfg = run.saved_config()
    if cfg is None:
        raise DamagedFileError(f"{run.config}: missing")
    cfg = _with_opened_data(cfg, run, opening, data_path)
    dataset = build_dataset(cfg.data)
    split, _ = read_split_folder(run.split, dataset)
    scorer = load_scorer(run.model, allow_pickle, opening)
    return LoadedRun(run.path, cfg, dataset, split, scorer, Thresholds.load(run.thresholds, dataset.scheme))


# Keys of a saved config that name files or folders (a run id or hub name is not a path).
PATH_KEYS = (
    "data.path",
    "split.dir",
    "distill.teacher",
    "model.members",
    "model.init_from",
    "model.pretrained",
)


def refuse_outside_paths(
    cfg: DictConfig,
    run: RunDir,
    opening: Opening,
    given: Sequence[str] = (),
    keys: Sequence[str] = PATH_KEYS,
    remedy: str = "pass {key}=... yourself to use it",
) -> None:
    """A saved config may name files and folders (``keys``) inside its run or the opener's folders
    only; a key the opener set (``given``) is the opener's choice. Else one line naming the key and
    the ``remedy``."""
    for key in keys:
        if any(key == g or key.startswith(f"{g}.") for g in given):
            continue
        value = OmegaConf.select(cfg, key, default=None)
        values = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
        for item in values:
            if item is None or not looks_like_path(str(item)):
                continue
            if not opening.allows(str(item), (run.path,)):
                roots = ", ".join(str(r) for r in opening.roots) or "none"
                raise ConfigError(
                    f"{run.config}: {key}={item} lies outside this run and your toxmod folders "
                    f"({roots}); {remedy.format(key=key)}"
                )


def _with_opened_data(
    cfg: DictConfig, run: RunDir, opening: Opening, data_path: str | Path | None
) -> DictConfig:
    """The run's config reading the data file the opener named, or its own one when that lies in
    the opener's folders; else one line saying how to name it."""
    cfg = cfg.copy()
    if data_path:
        OmegaConf.update(cfg, "data.path", str(Path(data_path).expanduser()), merge=False)
    else:
        remedy = "pass data_path=<the data file> to read it"
        refuse_outside_paths(cfg, run, opening, keys=("data.path",), remedy=remedy)
    return cfg


def load_run_on_split(
    ref: str,
    store: RunStore | NoStore,
    cache_dir: Path,
    split_sha256: str,
    role: str,
    opening: Opening | None = None,
) -> LoadedRun:
    """A finished run another run builds on (``role``: ``distill.teacher``, ``model.members``), which
    must have been evaluated on the same split: its valid/calib/holdout must be unseen by both."""
    loaded = load_run(ref, store, cache_dir, opening=opening)  # NoStore: a run dir only, or one line why
    recorded = read_json(loaded.directory / RunDir.HOLDOUT_EVAL).get("split_sha256")
    if recorded != split_sha256:
        raise ConfigError(
            f"{role}={ref}: that run was trained on split {str(recorded)[:12]}, this run uses split "
            f"{split_sha256[:12]}; runs built on other runs must share their split"
        )
    return loaded
