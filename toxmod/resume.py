"""``resume=last | auto | <checkpoint> | <run dir> | <run id>``: find where a chunked or killed run stopped.

``last`` and ``auto`` look for the newest checkpointed run of *this job*: the same resolved config
except for the keys a later chunk may change (how far to train, where it runs and is recorded), so
in a sweep every job finds its own run. ``auto`` starts a new run when there is none (re-running an
interrupted sweep with ``resume=auto`` continues what was started and runs the rest).
A resumed run writes into its original run directory and MLflow run; only its Hydra log folder is new.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toxmod.errors import ConfigError
from toxmod.reports import console
from toxmod.runs import CHECKPOINT_DIR, CONFIG_FILE, FAILED_FILE, LAST_CHECKPOINT, TRACKING_FILE
from toxmod.tracking import flatten


@dataclass(frozen=True)
class ResumePoint:
    """The run directory to continue in, the checkpoint to load and the MLflow run to reopen."""

    run_dir: Path
    checkpoint: Path
    run_id: str | None


# Keys a resumed chunk may change (prefixes end with "."); every other resolved key must match.
RESUME_FREE_KEYS = (
    "resume",
    "trainer.max_steps",
    "trainer.max_epochs",
    "model.max_epochs",
    "pretrain.max_steps",
    "pretrain.max_epochs",
    "data.path",  # the same rows are checked by the split hash (check_resumable)
    "checkpoint.",
    "early_stopping.",
    "callbacks.",
    "paths.",
    "hardware.",
    "tracking.",
    "bootstrap",
    "evaluate_splits",
    "run_name",
    "tags",
    "optimized_metric",
)
AUTO = "auto"
_ABSENT = object()
# Settings of one chunk, never inherited from the run's previous chunk (absent: the defaults).
CHUNK_KEYS = ("resume", "trainer.max_steps", "pretrain.max_steps", "callbacks")


def resolve_resume(spec: str, cfg: DictConfig) -> ResumePoint | None:
    """Turn ``resume=`` into a ``ResumePoint`` (one-line ConfigError when nothing matches).

    ``None`` only for ``resume=auto`` when this job has no checkpointed run yet.
    """
    if spec in ("last", AUTO):
        run_dir = _latest_run_of_this_job(cfg, required=spec == "last")
        return _point(run_dir, None) if run_dir else None
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".ckpt":
        return _point(path.parent.parent, path)
    if path.is_dir():
        return _point(path, None)
    run_dir = _run_dir_of_run_id(spec, cfg)
    return _point(run_dir, None)


def _point(run_dir: Path, checkpoint: Path | None) -> ResumePoint:
    checkpoint = checkpoint or run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not checkpoint.is_file():
        raise ConfigError(f"resume: {checkpoint} does not exist (nothing to resume in {run_dir})")
    run_id = None
    if (run_dir / TRACKING_FILE).is_file():
        run_id = json.loads((run_dir / TRACKING_FILE).read_text()).get("run_id")
    return ResumePoint(run_dir.resolve(), checkpoint.resolve(), run_id)


def job_differences(previous: DictConfig, current: DictConfig) -> dict[str, tuple[str, str]]:
    """``{key: (previous, current)}`` for resolved keys that differ, outside ``RESUME_FREE_KEYS``."""
    before = flatten(OmegaConf.to_container(previous, resolve=True), limit=None)
    now = flatten(OmegaConf.to_container(current, resolve=True), limit=None)
    return {
        key: (before.get(key, "<absent>"), now.get(key, "<absent>"))
        for key in sorted(set(before) | set(now))
        if not _free_to_change(key) and before.get(key) != now.get(key)
    }


def describe_differences(differences: dict[str, tuple[str, str]], shown: int = 3) -> str:
    """``key=now (the run: before), ...`` for the first ``shown`` differences."""
    parts = [f"{key}={now} (the run: {before})" for key, (before, now) in differences.items()]
    return ", ".join(parts[:shown]) + (" ..." if len(parts) > shown else "")


def _free_to_change(key: str) -> bool:
    # "callbacks." also covers "callbacks" itself (an empty group flattens to its own name).
    return any(
        key == free.rstrip(".") or (free.endswith(".") and key.startswith(free)) for free in RESUME_FREE_KEYS
    )


def _latest_run_of_this_job(cfg: DictConfig, required: bool) -> Path | None:
    """The newest checkpointed run under outputs/ and multirun/ whose config matches this job's."""
    roots = [Path(cfg.paths.output_dir), Path(cfg.paths.multirun_dir)]
    same_model_and_data = []  # (mtime, run dir, its config differences from this job)
    for root in roots:
        for checkpoint in root.glob(f"**/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"):
            run_dir = checkpoint.parent.parent
            previous = _saved_config(run_dir)
            if previous is not None and _task_model_and_data(previous) == _task_model_and_data(cfg):
                differences = job_differences(previous, cfg)
                same_model_and_data.append((checkpoint.stat().st_mtime, run_dir, differences))
    matching = [(mtime, run_dir) for mtime, run_dir, differences in same_model_and_data if not differences]
    if matching:
        return max(matching)[1]
    if not same_model_and_data:
        reason = (
            f"no run of model={cfg.model.name} data={cfg.data.name} has "
            f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT} under {roots[0]} or {roots[1]}"
        )
    else:
        _, newest, differences = max(same_model_and_data, key=lambda item: item[0])
        reason = (
            f"no checkpointed run of this job; the newest of model={cfg.model.name} data={cfg.data.name} "
            f"({newest}) differs: {describe_differences(differences)}; "
            "to continue that run, pass resume=<its run dir> without those overrides"
        )
    if required:
        raise ConfigError(f"resume=last: {reason}")
    console.print(f"resume=auto: {reason.split(';')[0]}; starting a new run")
    return None


def _saved_config(run_dir: Path) -> DictConfig | None:
    config_file = run_dir / CONFIG_FILE
    return OmegaConf.load(config_file) if config_file.is_file() else None


def _task_model_and_data(cfg: DictConfig) -> tuple[Any, Any, Any]:
    return cfg.get("task_name"), cfg.get("model", {}).get("name"), cfg.get("data", {}).get("name")


def resumed_config(
    run_dir: Path, current: DictConfig, explicit_overrides: Sequence[str] | None = None
) -> DictConfig:
    """The config a resumed chunk runs with: the run's own, plus the allowed overrides of ``current``.

    So ``resume=<run dir> trainer.max_steps=N`` continues the run as it was configured without
    repeating its overrides. ``CHUNK_KEYS`` always come from ``current``; overrides of the other
    ``RESUME_FREE_KEYS`` apply; one that changes any other key is refused, naming it.
    ``explicit_overrides`` are the command line's; ``None`` (a config composed in Python) takes
    every free key from ``current`` and refuses every other difference.
    """
    saved = _saved_config(run_dir)
    if saved is None:
        return current
    keys = None if explicit_overrides is None else [_override_key(o) for o in explicit_overrides]
    differences = {
        key: values
        for key, values in job_differences(saved, current).items()
        if keys is None or any(key == k or key.startswith(f"{k}.") for k in keys)
    }
    if differences:
        raise ConfigError(
            f"resume: a resumed run keeps its own settings, and {describe_differences(differences)} "
            "differ; drop them, or start a new run"
        )
    resolved = OmegaConf.create(OmegaConf.to_container(current, resolve=True))
    merged = OmegaConf.create(OmegaConf.to_container(saved, resolve=True))
    for key in resolved:  # config keys added since the run was made
        if key not in merged:
            merged[key] = resolved[key]
    if keys is None:
        applied = [free.rstrip(".") for free in RESUME_FREE_KEYS]
    else:
        applied = [key for key in keys if _free_to_change(key)]
    for key in {*CHUNK_KEYS, *applied}:
        if (
            OmegaConf.select(merged, key, default=_ABSENT) is _ABSENT
            and OmegaConf.select(resolved, key, default=_ABSENT) is _ABSENT
        ):
            continue  # a key of another entry point (e.g. pretrain.* in a fine-tune)
        value = OmegaConf.select(resolved, key, default=None)
        OmegaConf.update(merged, key, value, merge=False, force_add=True)
    return merged


def _override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``model=minilm`` -> the key it sets."""
    return override.lstrip("+~").split("=", 1)[0]


def _run_dir_of_run_id(run_id: str, cfg: DictConfig) -> Path:
    from toxmod.config import instantiate_component

    tracker = instantiate_component(cfg.tracking, "tracking")
    client = getattr(tracker, "client", None)
    if client is None:
        raise ConfigError(f"resume={run_id}: not a checkpoint or run directory (and tracking=none)")
    try:
        run = client.get_run(run_id)
    except Exception:
        raise ConfigError(f"resume={run_id}: not a checkpoint, a run directory or a run id") from None
    run_dir = run.data.tags.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        raise ConfigError(f"resume={run_id}: the run's directory {run_dir} is not on this machine")
    return Path(run_dir)


def reopen_resumed_run(
    resume: ResumePoint, sha256: str, result_file: str, key: str = "split_sha256", what: str = "split"
) -> None:
    """Before a resumed chunk touches its run directory: the same inputs (``check_resumable``), then
    the run is unfinished again until this chunk ends (its ``result_file`` and ``FAILED`` removed)."""
    check_resumable(resume.run_dir, sha256, key, what)
    console.print(f"[bold]resuming[/] {resume.run_dir} from {resume.checkpoint.name}")
    for marker in (result_file, FAILED_FILE):
        (resume.run_dir / marker).unlink(missing_ok=True)


def check_resumable(run_dir: Path, sha256: str, key: str = "split_sha256", what: str = "split") -> None:
    """A resumed run must train on the same split (or DAPT corpus): it may have changed on disk since.

    ``key`` names the hash in the run's ``tracking.json``. (Its settings, the auxiliary heads'
    included, are the run's own: ``resumed_config``.)
    """
    tracking_file = run_dir / TRACKING_FILE
    if tracking_file.is_file():
        previous = json.loads(tracking_file.read_text()).get(key)
        if previous and previous != sha256:
            raise ConfigError(
                f"resume: the {what} changed (sha256 {sha256[:12]} vs the run's {previous[:12]}); "
                f"a resumed run must train on the same {what}"
            )
