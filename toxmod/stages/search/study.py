"""The Optuna study a search keeps in its storage: opened or created once, shared by every worker, and
counted so that the number of trials asked for is the total over every restart.

A trial is *finished* when it completed, was pruned or failed; a trial whose sweep was killed (it stays
RUNNING with a dead owner) is marked failed and ``interrupted`` and does not count, so re-running the
command asks for it again. Workers on one machine serialize asking through a lock beside the SQLite
file, so two workers never overshoot the total.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxmod.errors import ConfigError
from toxmod.files import file_lock
from toxmod.runs.gc import process_alive, process_identity
from toxmod.stages.search.space import Objective, Param

INTERRUPTED = "toxmod.interrupted"  # a trial attr: its sweep was killed; it does not count
RUN_ID, RUN_DIR = "toxmod.run_id", "toxmod.run_dir"  # trial attrs: the run the trial's job recorded
METRIC_NAMES = "toxmod.objective_metrics"  # study attr: the metrics the objectives resolved to
PRUNERS = ("median", "successive_halving", "none")


@dataclass(frozen=True)
class StudyRef:
    """Where a study lives: its name and its storage URL (``sqlite:///...`` or a database URL)."""

    name: str
    storage: str

    @property
    def sqlite_file(self) -> Path | None:
        prefix = "sqlite:///"
        return Path(self.storage[len(prefix) :]) if self.storage.startswith(prefix) else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a worker counts and asks (one machine; a database URL is left to its server)."""
        file = self.sqlite_file
        if file is None:
            yield
            return
        file.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(file.with_name(file.name + ".lock")):
            yield


def study_name(
    stem: str, params: Sequence[Param], objectives: Sequence[Objective], fixed: Sequence[str]
) -> str:
    """``<stem>-<8 hex>``: the same space, objectives and fixed overrides give the same study."""
    described = {
        "params": [repr(p) for p in params],
        "objectives": [(o.metric, o.direction) for o in objectives],
        "fixed": sorted(fixed),
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()[:8]
    return f"{stem}-{digest}"


def storage_url(storage: str | None, name: str, searches_dir: Path) -> str:
    """``storage`` as given, else one SQLite file per study under ``searches_dir``."""
    if storage:
        return str(storage)
    return f"sqlite:///{(searches_dir / f'{name}.db').resolve()}"


def make_sampler(settings: Mapping[str, Any]) -> Any:
    import optuna

    name = str(settings.get("name", "tpe"))
    seed = settings.get("seed")
    if name == "tpe":
        startup = int(settings.get("n_startup_trials", 5))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"search.sampler.name={name}: expected tpe or random")


def make_pruner(settings: Mapping[str, Any]) -> Any:
    import optuna

    name = str(settings.get("name", "median"))
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=int(settings.get("n_startup_trials", 2)),
            n_warmup_steps=int(settings.get("n_warmup_steps", 0)),
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.get("min_resource", "auto"),
            reduction_factor=int(settings.get("reduction_factor", 3)),
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"search.pruner.name={name}: expected one of {', '.join(PRUNERS)}")


def open_study(
    ref: StudyRef,
    objectives: Sequence[Objective],
    sampler: Mapping[str, Any] | None = None,
    pruner: Mapping[str, Any] | None = None,
    create: bool = True,
) -> Any:
    """The study (created on first use); its directions must be the objectives'."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions: list[Any] = [o.direction for o in objectives]
    if ref.sqlite_file is not None:
        ref.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    sampler_obj = make_sampler(sampler or {})
    pruner_obj = make_pruner(pruner or {})
    if create:
        study = optuna.create_study(
            study_name=ref.name,
            storage=ref.storage,
            directions=directions,
            sampler=sampler_obj,
            pruner=pruner_obj,
            load_if_exists=True,
        )
    else:
        study = optuna.load_study(
            study_name=ref.name, storage=ref.storage, sampler=sampler_obj, pruner=pruner_obj
        )
    had = [d.name.lower() for d in study.directions]
    if had != directions:
        raise ConfigError(
            f"search.objectives: study {ref.name} in {ref.storage} optimizes {had}, not {directions}; "
            "name another study (search.study_name=...)"
        )
    return study


def mark_interrupted(study: Any) -> int:
    """Trials left RUNNING by a sweep that is gone (on this machine) become failed + interrupted."""
    import optuna

    marked = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = {k: str(v) for k, v in trial.user_attrs.items() if k.startswith("process.")}
        if owner and process_alive(owner) is False:
            optuna.trial.Trial(study, trial._trial_id).set_user_attr(INTERRUPTED, True)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            marked += 1
    return marked


def counts(study: Any) -> dict[str, int]:
    """Trials by state; ``finished`` is what counts toward ``n_trials`` (interrupted ones do not)."""
    import optuna

    states = optuna.trial.TrialState
    found = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == states.COMPLETE:
            found["complete"] += 1
        elif trial.state == states.PRUNED:
            found["pruned"] += 1
        elif trial.state == states.FAIL:
            found["interrupted" if trial.user_attrs.get(INTERRUPTED) else "failed"] += 1
        elif trial.state == states.RUNNING:
            found["running"] += 1
    found["finished"] = found["complete"] + found["pruned"] + found["failed"]
    return found


def ask(study: Any, sampler: Mapping[str, Any], owner: Mapping[str, str] | None = None) -> Any:
    """A new trial, owned by this process (so a later run can tell it was interrupted).

    The sampler is seeded with ``seed`` + the trials the study holds: a restarted or second worker
    never repeats the suggestions already made, and the same history gives the same suggestion."""
    seed = sampler.get("seed")
    offset = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler({**sampler, "seed": None if seed is None else int(seed) + offset})
    trial = study.ask()
    for key, value in (owner or process_identity()).items():
        trial.set_user_attr(key, value)
    return trial
