"""A search trial as one training job: the job finds its trial in the study, reports the monitored
valid metric at every validation (so a pruner can stop it), and tells the study how it ended.

The job tells the study itself, in its own process (a joblib worker, a Ray task on another machine):
a sweep that dies loses no finished trial. A pruned trial raises ``TrialPruned`` out of the training
loop; its run ends KILLED, tagged ``toxmod.trial_state=pruned``, with every curve logged so far kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from toxmod.errors import ConfigError, ToxmodError, is_interrupt
from toxmod.runs.budget import excesses
from toxmod.runs.tracking import STUDY_TAG
from toxmod.stages.search.outcomes import TrialPruned
from toxmod.stages.search.space import OPERATING_POINT, Objective, parse_objectives
from toxmod.stages.search.study import INTERRUPTED, METRIC_NAMES, RUN_DIR, RUN_ID, StudyRef, open_study


class TrialResult(Protocol):
    """What a trial's job returns (the train stage's ``TrainResult``)."""

    @property
    def metrics(self) -> dict[str, float]: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def run_dir(self) -> Path: ...
    @property
    def primary_decision(self) -> str: ...


R = TypeVar("R", bound=TrialResult)
BUDGET_CONSTRAINT = "valid_fpr_over_budget"  # the worst decision's valid FPR minus its allowance
TRIAL_TAG = "toxmod.trial"  # a trial's run: its number in the study (toxmod.study names the study)


@dataclass(frozen=True)
class TrialLink:
    """The trial a job runs: its study, its number, the objectives and the pruner settings."""

    study: StudyRef
    number: int
    trial_id: int
    objectives: tuple[Objective, ...]
    pruner: Mapping[str, Any]

    @property
    def tags(self) -> dict[str, str]:
        return {STUDY_TAG: self.study.name, TRIAL_TAG: str(self.number)}

    def open(self) -> Any:
        return open_study(self.study, self.objectives, pruner=self.pruner, create=False)

    def trial(self, study: Any) -> Any:
        import optuna

        return optuna.trial.Trial(study, self.trial_id)

    def callbacks(self) -> list[Any]:
        """A pruning callback for trainer-driven models (single-objective studies; Optuna prunes no
        multi-objective study); classical models never call it."""
        if len(self.objectives) != 1:
            return []
        from toxmod.stages.search.pruning import PruningCallback

        def opened_trial() -> Any:
            return self.trial(self.open())

        return [PruningCallback(opened_trial, self.objectives[0].direction == "maximize")]


def trial_link(cfg: Any) -> TrialLink | None:
    """The job's trial (``search_trial`` set by the search sweeper), else None."""
    node = cfg.get("search_trial")
    if not node:
        if cfg.get("search"):
            raise ConfigError(
                "search=...: a search is a multirun; run it with -m (python -m toxmod.train -m ...)"
            )
        return None
    search = cfg.get("search") or {}
    objectives = tuple(parse_objectives(search.get("objectives")))
    return TrialLink(
        StudyRef(str(node["study"]), str(node["storage"])),
        int(node["number"]),
        int(node["trial_id"]),
        objectives,
        dict(search.get("pruner") or {}),
    )


def objective_values(
    link: TrialLink, metrics: Mapping[str, float], primary_decision: str
) -> tuple[list[float], list[str]]:
    """The run's value of each objective and the metric each resolved to (``operating_point``: the
    primary decision's valid recall at its calibrated FPR budget, what ``select`` ranks on)."""
    names = [
        f"valid/{primary_decision}/recall" if o.metric == OPERATING_POINT else o.metric
        for o in link.objectives
    ]
    missing = [name for name in names if name not in metrics]
    if missing:
        valid = sorted(k for k in metrics if k.startswith("valid/"))[:12]
        raise ToxmodError(
            f"search.objectives: the run recorded no {missing[0]} "
            f"(its valid metrics include {', '.join(valid)})"
        )
    return [float(metrics[name]) for name in names], names


def run_trial(link: TrialLink, job: Callable[[], R], run_dir: str | Path) -> R:
    """Run the trial's job (its run in ``run_dir``) and tell the study how it ended (complete, pruned,
    failed or interrupted)."""
    import optuna

    study = link.open()
    trial = link.trial(study)
    trial.set_user_attr(RUN_DIR, str(run_dir))
    states = optuna.trial.TrialState
    try:
        result = job()
    except TrialPruned:
        study.tell(link.number, state=states.PRUNED, skip_if_finished=True)
        raise
    except BaseException as error:
        if is_interrupt(error) or not isinstance(error, Exception):
            trial.set_user_attr(INTERRUPTED, True)
        study.tell(link.number, state=states.FAIL, skip_if_finished=True)
        raise
    try:
        values, names = objective_values(link, result.metrics, result.primary_decision)
    except ToxmodError:
        study.tell(link.number, state=states.FAIL, skip_if_finished=True)
        raise
    over = [excess for _, excess in excesses(result.metrics).values()]
    if over:  # feasible at <= 0: within every FPR budget on valid, as select requires to crown it
        trial.set_constraint(BUDGET_CONSTRAINT, max(over))
    trial.set_user_attr(RUN_ID, result.run_id or "")
    trial.set_user_attr(RUN_DIR, str(result.run_dir))  # a resumed job's own folder
    study.set_user_attr(METRIC_NAMES, names)
    study.tell(link.number, values, skip_if_finished=True)
    return result
