"""A search as a Hydra multirun: check the space, open the study, then ask, launch and count until the
study holds ``search.n_trials`` finished trials, and summarize it in the study's parent MLflow run.

Each trial is one job of the configured launcher (basic: one at a time; joblib or Ray: ``parallel``
side by side, each with its thread share); the job tells the study how it ended (``trial.py``).
Re-running the same command continues the same study; two commands at once share it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from toxmod.config import as_dict, exit_on_user_error, override_key
from toxmod.errors import ConfigError
from toxmod.progress import console
from toxmod.redact import redact
from toxmod.runs.jobs import changes_the_model
from toxmod.stages.search.space import Objective, Param, overrides_for, parse_objectives, parse_params, sample
from toxmod.stages.search.study import (
    StudyRef,
    ask,
    counts,
    mark_interrupted,
    open_study,
    storage_url,
    study_name,
)


@dataclass(frozen=True)
class SearchPlan:
    """A checked search: the space, the objectives, the study and how many trials to run."""

    params: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    study: StudyRef
    n_trials: int
    parallel: int
    sampler: Mapping[str, Any]
    pruner: Mapping[str, Any]
    fixed: tuple[str, ...]


def plan_search(config: DictConfig, parsed_overrides: Sequence[Any]) -> SearchPlan:
    """The search the command asks for; anything wrong is one line naming the key."""
    search = config.get("search")
    if not search:
        raise ConfigError("hydra/sweeper=optuna_search needs a search space: add search=<name> (conf/search)")
    settings = as_dict(search)
    params = parse_params(settings.get("params"))
    fixed: list[str] = []
    for override in parsed_overrides:  # a swept list on the command line is one more categorical entry
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(
                    f"{override.input_line}: a search takes lists (a,b,c), not ranges; use search.params"
                )
            params += parse_params(
                {override.get_key_element(): {"choices": list(override.sweep_string_iterator())}}
            )
        else:
            fixed.append(override.input_line)
    keys = [p.key for p in params]
    doubled = sorted({k for k in keys if keys.count(k) > 1})
    if doubled:
        raise ConfigError(
            f"search.params: {doubled[0]} is searched twice (in search.params and on the command line)"
        )
    objectives = parse_objectives(settings.get("objectives"))
    n_trials = int(settings.get("n_trials") or 0)
    if n_trials < 1:
        raise ConfigError(f"search.n_trials={settings.get('n_trials')}: expected at least 1")
    keys = [override_key(a).lstrip("+~") for a in fixed]  # what the study is: not where or how it runs
    identity = [a for a, k in zip(fixed, keys) if changes_the_model(k) and not k.startswith("hydra")]
    name = str(
        settings.get("study_name")
        or study_name(str(settings.get("name") or "search"), params, objectives, identity)
    )
    searches_dir = Path(str(OmegaConf.select(config, "paths.searches_dir")))
    ref = StudyRef(name, storage_url(settings.get("storage"), name, searches_dir))
    return SearchPlan(
        tuple(params),
        tuple(objectives),
        ref,
        n_trials,
        _parallel(settings.get("parallel"), config),
        dict(settings.get("sampler") or {}),
        dict(settings.get("pruner") or {}),
        tuple(fixed),
    )


def _parallel(asked: Any, config: DictConfig) -> int:
    """Trials launched at once: ``search.parallel``, else as many as the launcher runs side by side."""
    if asked:
        return max(int(asked), 1)
    launcher = OmegaConf.select(config, "hydra.launcher") or {}
    target, cpus = str(launcher.get("_target_", "")), os.cpu_count() or 1
    jobs = int(launcher.get("n_jobs") or 0)
    if "joblib" in target and jobs:
        return jobs if jobs > 0 else max(cpus + 1 + jobs, 1)  # joblib: -1 = one per CPU
    if "ray" in target.lower():
        available = int(OmegaConf.select(config, "hydra.launcher.ray.init.num_cpus") or cpus)
        per_trial = float(OmegaConf.select(config, "hydra.launcher.ray.remote.num_cpus") or 1)
        return max(int(available // per_trial), 1)
    return 1


def check_keys(
    plan: SearchPlan, compose: Callable[[list[str]], DictConfig], groups: Callable[[str], list[str]]
) -> None:
    """Every searched key exists where it is sampled: a config group's options, or a key of the config
    composed with the fixed overrides and the choices its conditions name."""
    for param in plan.params:
        options = groups(param.key) if "." not in param.key else []
        if options:
            unknown = [c for c in param.choices if str(c) not in options]
            if param.kind != "categorical" or unknown:
                shown = unknown[0] if unknown else param.kind
                raise ConfigError(
                    f"search.params.{param.key}: {shown} is not an option of config group {param.key} "
                    f"(options: {', '.join(options)})"
                )
            continue
        conditions = [f"{key}={values[0]}" for key, values in param.when.items()]
        cfg = compose([*plan.fixed, *conditions])
        if OmegaConf.select(cfg, param.key, default="__missing__") == "__missing__":
            parent = param.key.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            known = ", ".join(sorted(str(k) for k in node)[:30]) if isinstance(node, DictConfig) else ""
            where = f" with {' '.join(conditions)}" if conditions else ""
            raise ConfigError(
                f"search.params.{param.key}: not a key of this config{where}"
                + (f" (keys: {known})" if known else "")
            )


def trial_overrides(plan: SearchPlan, chosen: Mapping[str, Any], number: int, trial_id: int) -> list[str]:
    """A trial's job: the fixed overrides, the sampled values and where its trial is."""
    where = (
        f"{{study:'{plan.study.name}',storage:'{plan.study.storage}',number:{number},trial_id:{trial_id}}}"
    )
    # the sampled values first: a run's default name shows them before the command's own overrides
    return [*overrides_for(plan.params, chosen), *plan.fixed, f"search_trial={where}"]


def run_search(plan: SearchPlan, launch: Callable[[list[list[str]], int], Sequence[Any]]) -> Any:
    """Ask, launch and count until the study holds ``n_trials`` finished trials; returns the study."""
    with plan.study.lock():
        study = open_study(plan.study, plan.objectives, plan.sampler, plan.pruner)
        interrupted = mark_interrupted(study)
    before = counts(study)
    console.print(
        f"search {plan.study.name}: {before['finished']}/{plan.n_trials} trials finished"
        + (f", {interrupted} interrupted trial(s) asked again" if interrupted else "")
        + f" · study in {plan.study.storage}"
    )
    job_index = 0
    while True:
        with plan.study.lock():
            now = counts(study)
            wanted = min(plan.parallel, plan.n_trials - now["finished"] - now["running"])
            if wanted <= 0:
                break
            batch, trials = [], []
            for _ in range(wanted):
                trial = ask(study, plan.sampler)
                chosen = sample(plan.params, trial)
                batch.append(trial_overrides(plan, chosen, trial.number, trial._trial_id))
                trials.append(trial)
        launch(batch, job_index)
        job_index += len(batch)
        _fail_untold(study, trials)
    return study


def _fail_untold(study: Any, trials: Sequence[Any]) -> None:
    """A job that died without telling the study (killed, out of memory): its trial failed."""
    import optuna

    running = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for trial in trials:
        if trial.number in running:
            print(f"search: trial {trial.number} ended without a result; recorded failed", file=sys.stderr)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


@exit_on_user_error
def search_sweep(config: DictConfig, config_loader: Any, launcher: Any, arguments: list[str]) -> Any:
    """The body of the ``optuna_search`` sweeper: plan and check, run the study, summarize it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from toxmod.config import instantiate_component
    from toxmod.runs.gc import process_identity
    from toxmod.stages.search.summary import log_summary, print_summary, write_summary

    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(list(arguments))
    plan = plan_search(config, parsed)
    check_keys(
        plan,
        lambda overrides: config_loader.load_sweep_config(config, list(overrides)),
        lambda group: (
            list(config_loader.get_group_options(group))
            if config_loader.repository.group_exists(group)
            else []
        ),
    )
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    tracker = instantiate_component(config.tracking, "tracking")
    tags = {"study_storage": redact(plan.study.storage), **process_identity()}
    parent = tracker.study_parent(plan.study.name, sweep_dir, tags)
    study = run_search(plan, lambda batch, index: launcher.launch(batch, initial_job_idx=index))
    files = write_summary(study, sweep_dir / "search")
    print_summary(study)
    log_summary(tracker, parent, study, files, plan.study.storage)
    return study
