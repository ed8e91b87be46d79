"""Jobs and resumption: which run is "this job's", and where a chunked, killed or finished run stands.

A job is a resolved config minus the keys a later chunk may change (how far to train, where it runs
and is recorded): its **job key** is the SHA-256 of that config. Every run directory's saved
``config.yaml`` gives its job key, so a stage can find this job's runs -- checkpointed *and*
finished ones -- whatever the run directory is called.

``resume=``:

* ``auto`` -- a finished run of this job asked for the same extent (``trainer.max_steps``,
  ``max_epochs``) is skipped; else the newest checkpointed run of the job continues; else a new run
  starts. Re-running an interrupted sweep with ``resume=auto`` finishes exactly what is missing.
* ``last`` -- the newest checkpointed run of this job continues (refused, naming the differing
  keys, when there is none).
* ``<checkpoint>``, ``<run dir>``, ``<run id>`` -- that run continues.

A resumed run writes into its original run directory and tracking run, with its own saved config;
overrides may change only the free keys.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxmod.config import override_key
from toxmod.errors import ConfigError, ToxmodError
from toxmod.models import Opening
from toxmod.paths import user_roots
from toxmod.progress import console
from toxmod.runs.opening import PATH_KEYS, refuse_outside_paths
from toxmod.runs.record import RunDir
from toxmod.runs.store import NoStore, RunStore
from toxmod.runs.tracking import flatten
from toxmod.spec import SPECS, Spec
from toxmod.spec.fields import dotted, plain, set_dotted


def free_keys(specs: Sequence[type[Spec]]) -> list[str]:
    """The declared keys a resumed chunk may change (``setting(job=False)``); a group none of whose keys
    is the job's (``hardware``) is free as a whole, also keys an older version's run saved in it."""
    keys = []
    for spec in specs:
        free = [f.name for f in dataclasses.fields(spec) if not f.metadata["job"]]
        whole = len(free) == len(dataclasses.fields(spec))
        keys += [f"{spec.GROUP}."] if whole else [f"{spec.GROUP}.{name}" for name in free]
    return keys


# Keys a resumed chunk may change (prefixes end with "."); every other resolved key must match. The
# declared groups' free keys (``job=False``: data.path, hardware.*) come from their specifications.
RESUME_FREE_KEYS = (
    "resume",
    "trainer.max_steps",
    "trainer.max_epochs",
    "model.max_epochs",
    "pretrain.max_steps",
    "pretrain.max_epochs",
    "callbacks.",
    "model.n_jobs",  # the process's CPU share (hardware.threads), not what the job is
    "plots",  # what is drawn and timed after training does not change the job
    "log_pyfunc",
    "tracking.",
    "bootstrap",
    "evaluate_splits",
    "run_name",
    "tags",
    "optimized_metric",
    "search.",  # a search's settings and a trial's place in it: the trial's job is its config's
    "search_trial.",
    *free_keys(SPECS),
)
# How far a job trains: a finished run answers a request for the same extent only.
EXTENT_KEYS = (
    "trainer.max_steps",
    "trainer.max_epochs",
    "model.max_epochs",
    "pretrain.max_steps",
    "pretrain.max_epochs",
)
# Settings of one chunk, never inherited from the run's previous chunk (absent: the defaults).
CHUNK_KEYS = ("resume", "trainer.max_steps", "pretrain.max_steps", "callbacks")
AUTO = "auto"
_ABSENT = object()


@dataclass(frozen=True)
class ResumePoint:
    """The run directory to continue in, the checkpoint to load and the tracking run to reopen."""

    run_dir: Path
    checkpoint: Path
    run_id: str | None


@dataclass(frozen=True)
class FinishedJob:
    """This job already has a finished run for the same request: nothing to compute."""

    run_dir: Path


Settings = Mapping[str, Any]  # a resolved config as plain dicts and lists (``config.as_dict``)


def _flat(cfg: Settings) -> dict[str, str]:
    return flatten(plain(cfg), limit=None)


def _free_to_change(key: str) -> bool:
    # "callbacks." also covers "callbacks" itself (an empty group flattens to its own name).
    return any(
        key == free.rstrip(".") or (free.endswith(".") and key.startswith(free)) for free in RESUME_FREE_KEYS
    )


def changes_the_model(key: str) -> bool:
    """Whether an override of ``key`` can change what a run computes: not a free key, or how far it
    trains (a search's study is the same for the same model-changing overrides)."""
    return not _free_to_change(key) or key in EXTENT_KEYS


def job_key(cfg: Settings) -> str:
    """SHA-256 of the resolved config without the free keys: the same job gets the same key."""
    kept = {key: value for key, value in _flat(cfg).items() if not _free_to_change(key)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode("utf-8")).hexdigest()


def _extent(cfg: Settings) -> dict[str, Any]:
    return {key: dotted(cfg, key) for key in EXTENT_KEYS}


def job_differences(previous: Settings, current: Settings) -> dict[str, tuple[str, str]]:
    """``{key: (previous, current)}`` for resolved keys that differ, outside ``RESUME_FREE_KEYS``."""
    before, now = _flat(previous), _flat(current)
    return {
        key: (before.get(key, "<absent>"), now.get(key, "<absent>"))
        for key in sorted(set(before) | set(now))
        if not _free_to_change(key) and before.get(key) != now.get(key)
    }


def describe_differences(differences: dict[str, tuple[str, str]], shown: int = 3) -> str:
    """``key=now (the run: before), ...`` for the first ``shown`` differences."""
    parts = [f"{key}={now} (the run: {before})" for key, (before, now) in differences.items()]
    return ", ".join(parts[:shown]) + (" ..." if len(parts) > shown else "")


@dataclass(frozen=True)
class _Candidate:
    run: RunDir
    config: dict[str, Any]
    mtime: float


def _runs_of_task(cfg: Settings) -> list[_Candidate]:
    """Run directories under outputs/ and multirun/ of the same task, model and data as ``cfg``.

    A run directory is one with ``tracking.json`` (written when the run starts): copies of a run's
    files (downloaded artifacts) and the launcher's own copy of the config are not runs.
    """
    found = []
    for root in (Path(cfg["paths"]["output_dir"]), Path(cfg["paths"]["multirun_dir"])):
        for tracking_file in root.glob(f"**/{RunDir.TRACKING}"):
            run = RunDir(tracking_file.parent)
            try:
                saved = run.saved_config()
            except ToxmodError:  # a damaged or untrusted config is nobody's job: never continued
                continue
            if saved is not None and _task_model_and_data(saved) == _task_model_and_data(cfg):
                found.append(_Candidate(run, saved, run.config.stat().st_mtime))
    return found


def _task_model_and_data(cfg: Settings) -> tuple[Any, Any, Any]:
    return cfg.get("task_name"), dotted(cfg, "model.name"), dotted(cfg, "data.name")


def resolve_resume(
    spec: str, cfg: Settings, store: RunStore | NoStore | None = None
) -> ResumePoint | FinishedJob | None:
    """Turn ``resume=`` into what to do (one-line ConfigError when nothing matches).

    None: start a new run (``resume=auto`` and this job has no run to continue).
    """
    if spec in ("last", AUTO):
        return _this_job(cfg, auto=spec == AUTO)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".ckpt":
        return _point(RunDir(path.parent.parent), path)
    if path.is_dir():
        return _point(RunDir(path), None)
    return _point(_run_dir_of_run_id(spec, store), None)


def _this_job(cfg: Settings, auto: bool) -> ResumePoint | FinishedJob | None:
    key, extent = job_key(cfg), _extent(cfg)
    candidates = _runs_of_task(cfg)
    same_job = [c for c in candidates if job_key(c.config) == key]
    if auto:
        done = [c for c in same_job if c.run.finished and _extent(c.config) == extent]
        if done:
            return FinishedJob(max(done, key=lambda c: c.mtime).run.path)
    checkpointed = [c for c in same_job if c.run.last_checkpoint.is_file()]
    if checkpointed:
        newest = max(checkpointed, key=lambda c: c.run.last_checkpoint.stat().st_mtime)
        return _point(newest.run, None)
    reason = _no_run_reason(cfg, [c for c in candidates if c.run.last_checkpoint.is_file()])
    if not auto:
        raise ConfigError(f"resume=last: {reason}")
    console.print(f"resume=auto: {reason.split(';')[0]}; starting a new run")
    return None


def _no_run_reason(cfg: Settings, checkpointed: list[_Candidate]) -> str:
    where = f"under {dotted(cfg, 'paths.output_dir')} or {dotted(cfg, 'paths.multirun_dir')}"
    job = f"model={dotted(cfg, 'model.name')} data={dotted(cfg, 'data.name')}"
    if not checkpointed:
        checkpoint = f"{RunDir.CHECKPOINTS}/{RunDir.LAST_CHECKPOINT}"
        return f"no run of {job} has {checkpoint} {where}"
    newest = max(checkpointed, key=lambda c: c.mtime)
    return (
        f"no checkpointed run of this job; the newest of {job} "
        f"({newest.run.path}) differs: {describe_differences(job_differences(newest.config, cfg))}; "
        "to continue that run, pass resume=<its run dir> without those overrides"
    )


def _point(run: RunDir, checkpoint: Path | None) -> ResumePoint:
    checkpoint = checkpoint or run.last_checkpoint
    if not checkpoint.is_file():
        raise ConfigError(f"resume: {checkpoint} does not exist (nothing to resume in {run.path})")
    return ResumePoint(run.path.resolve(), checkpoint.resolve(), run.tracking_record().get("run_id"))


def _run_dir_of_run_id(run_id: str, store: RunStore | NoStore | None) -> RunDir:
    if store is None or isinstance(store, NoStore):
        raise ConfigError(f"resume={run_id}: not a checkpoint or run directory (and tracking=none)")
    if not store.has_run(run_id):
        raise ConfigError(f"resume={run_id}: not a checkpoint, a run directory or a run id in {store.uri}")
    run_dir = store.get(run_id).tags.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        raise ConfigError(f"resume={run_id}: the run's directory {run_dir} is not on this machine")
    return RunDir(Path(run_dir))


def resumed_config(
    run_dir: Path, current: Settings, explicit_overrides: Sequence[str] | None = None
) -> dict[str, Any]:
    """The config a resumed chunk runs with: the run's own, plus the allowed overrides of ``current``.

    So ``resume=<run dir> trainer.max_steps=N`` continues the run as it was configured without
    repeating its overrides. ``CHUNK_KEYS`` always come from ``current``; overrides of the other
    ``RESUME_FREE_KEYS`` apply; one that changes any other key is refused, naming it.
    ``explicit_overrides`` are the command line's; ``None`` (a config composed in Python) takes
    every free key from ``current`` and refuses every other difference.
    """
    saved = RunDir(run_dir).saved_config()
    if saved is None:
        return plain(current)
    keys = None if explicit_overrides is None else [override_key(o) for o in explicit_overrides]
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
    resolved, merged = plain(current), copy.deepcopy(saved)
    for key in resolved:  # config keys added since the run was made
        if key not in merged:
            merged[key] = resolved[key]
    if keys is None:
        applied = [free.rstrip(".") for free in RESUME_FREE_KEYS]
    else:
        applied = [key for key in keys if _free_to_change(key)]
    _take_user_owned(merged, saved, resolved, keys, run_dir)
    for key in {*CHUNK_KEYS, *applied}:
        if dotted(merged, key, _ABSENT) is _ABSENT and dotted(resolved, key, _ABSENT) is _ABSENT:
            continue  # a key of another entry point (e.g. pretrain.* in a fine-tune)
        set_dotted(merged, key, copy.deepcopy(dotted(resolved, key)))
    return merged


# What a saved config never chooses when its run is continued: where records go, where files live,
# what the machine is. They come from the command (and the user's own config) every time.
USER_OWNED = ("tracking", "paths", "hardware")


def _take_user_owned(
    merged: dict[str, Any], saved: Settings, current: Settings, keys: list[str] | None, run_dir: Path
) -> None:
    """``USER_OWNED`` groups from ``current``; a tracking store other than the run's, unless the
    command named it, is one line (a saved run never chooses where it is recorded); the saved
    config's file and folder keys must lie in the run or the user's folders (``refuse_outside_paths``)."""
    named = keys or []
    for group in USER_OWNED:
        if group not in current:
            continue
        was = saved.get(group)
        now = current[group]
        explicit = any(k == group or k.startswith(f"{group}.") for k in named)
        if group == "tracking" and was is not None and was != now and not explicit:
            uri = was.get("uri") if isinstance(was, dict) else was
            raise ConfigError(
                f"resume: this run was recorded in {uri}; this command records in {now.get('uri')}: "
                f"pass tracking.uri={uri} to continue it there"
            )
        merged[group] = copy.deepcopy(current[group])
    opening = Opening(roots=user_roots(current["paths"])) if "paths" in current else Opening()
    same = [  # what the user's own config names too is the user's choice
        key
        for key in PATH_KEYS
        if dotted(current, key) is not None and dotted(current, key) == dotted(merged, key)
    ]
    refuse_outside_paths(merged, RunDir(run_dir), opening, [*named, *same])


def check_resumable(run_dir: Path, sha256: str, key: str = "split_sha256", what: str = "split") -> None:
    """A resumed run must train on the same split (or DAPT corpus): it may have changed on disk since.

    ``key`` names the hash in the run's ``tracking.json``. (Its settings, the auxiliary heads'
    included, are the run's own: ``resumed_config``.)
    """
    previous = RunDir(run_dir).tracking_record().get(key)
    if previous and previous != sha256:
        raise ConfigError(
            f"resume: the {what} changed (sha256 {sha256[:12]} vs the run's {previous[:12]}); "
            f"a resumed run must train on the same {what}"
        )
