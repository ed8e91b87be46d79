"""Evaluation runs: one MLflow run per ``toxmod.evaluate`` of a finished run on some data or a suite.

It lives in the evaluated run's experiment, is tagged ``toxmod.kind=evaluation`` (so ``select`` and
``compare`` never take it for a model), names the evaluated run (``evaluated_run_id``) and what was
scored (``dataset`` + ``dataset_digest``, or ``suite`` + ``suite_sha256``), and links its metrics to the
evaluated run's logged model and to that dataset: the Models view shows one model's metrics on every
dataset it was scored on. ``find_evaluation`` reuses an earlier one (``select``'s suite gate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxmod.runs.record import RunDir
from toxmod.runs.store import FINISHED, RunStore, StoredRun
from toxmod.runs.tracking import KIND_TAG, MlflowTracker, Tracker

EVALUATION_KIND = "evaluation"
EVALUATED_TAG = "evaluated_run_id"


@dataclass(frozen=True)
class Evaluated:
    """The run an evaluation is about, as the store knows it (None: not tracked there)."""

    stored: StoredRun | None
    experiment: str | None

    @property
    def model_uri(self) -> str | None:
        return self.stored.tags.get("pyfunc_model_uri") if self.stored else None


def evaluated_run(store: RunStore, run: RunDir) -> Evaluated:
    """The tracking run of a run folder (``tracking.json``), when this store holds it."""
    run_id = run.tracking_record().get("run_id")
    if not run_id or not store.has_run(str(run_id)):
        return Evaluated(None, None)
    stored = store.get(str(run_id))
    return Evaluated(stored, store.experiment_name(stored.experiment_id))


@dataclass(frozen=True)
class ScoredData:
    """What an evaluation scored: a dataset (name, digest, where it came from) and its metrics."""

    name: str
    digest: str
    source: Mapping[str, Any]
    context: str  # MLflow's input context: the split, "evaluation" or "suite"
    metrics: Mapping[str, float]


def record_evaluation(
    tracker: Tracker,
    evaluated: Evaluated,
    run_name: str,
    scored: Sequence[ScoredData],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    folder: Path,
) -> str | None:
    """One FINISHED evaluation run holding ``scored`` (linked to the model), ``params`` and the files
    of ``folder``; its run id (None with tracking=none)."""
    if not isinstance(tracker, MlflowTracker):
        return None
    if evaluated.experiment:
        tracker.experiment_name = evaluated.experiment
    all_tags = {
        **tags,
        KIND_TAG: EVALUATION_KIND,
        **({EVALUATED_TAG: evaluated.stored.run_id} if evaluated.stored else {}),
    }
    with tracker.run(run_name=run_name, tags=all_tags) as active:
        active.log_params(params)
        for data in scored:
            active.log_metrics(data.metrics)
            active.link_metrics(
                evaluated.model_uri, data.name, data.digest, data.source, data.context, data.metrics
            )
        active.log_artifacts(folder)
        return active.run_id


def find_evaluation(store: RunStore, run_id: str, tags: Mapping[str, str]) -> StoredRun | None:
    """The newest FINISHED evaluation run of ``run_id`` carrying ``tags`` (e.g. the suite's hash)."""
    found = store.search(None, FINISHED, {EVALUATED_TAG: run_id, KIND_TAG: EVALUATION_KIND, **tags}, 1)
    return found[0] if found else None


__all__ = [
    "EVALUATION_KIND",
    "Evaluated",
    "ScoredData",
    "evaluated_run",
    "find_evaluation",
    "record_evaluation",
]
