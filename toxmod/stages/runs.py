"""The runs stage: settle what dead processes left behind in the tracking store (``runs gc``)."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console

from toxmod.config import instantiate_component
from toxmod.errors import ConfigError
from toxmod.progress import console
from toxmod.runs.gc import PROCESS_DIED, Collected, collect
from toxmod.runs.store import NoStore


def collect_runs(cfg: DictConfig) -> Collected:
    """Mark RUNNING runs whose process is gone FAILED ("process died"); report what was done."""
    store = instantiate_component(cfg.tracking, "tracking").store()
    if isinstance(store, NoStore):
        raise ConfigError("runs gc reads the MLflow store; it cannot run with tracking=none")
    result = collect(store, int(cfg.max_runs))
    report(result)
    return result


def report(result: Collected, out: Console = console) -> None:
    for run_id in result.failed:
        out.print(f"run {run_id}: RUNNING, but its process is gone -> FAILED ({PROCESS_DIED})")
    for run_id in result.completed:
        out.print(f"run {run_id}: FINISHED; its holdout_eval.json was still pending -> put in place")
    if result.unknown:
        out.print(f"{len(result.unknown)} RUNNING run(s) of other hosts left as they are")
