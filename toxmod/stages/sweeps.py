"""Sweeps that keep going: each job records how it ended, and the multirun ends with one summary.

Hydra's basic launcher stops a multirun at the first job that exits; a sweep of nine points should
instead record the bad point FAILED (the train stage already marks its MLflow run) and go on. Each
job writes ``job_status.json`` into its own folder -- so it works for launchers that run jobs in other
processes (joblib) -- and ``SweepSummary`` reads them back at the end: done / skipped / failed, and
exit code 1 when any job failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from toxmod.display import printable
from toxmod.errors import StoppedEarly, ToxmodError
from toxmod.progress import console, print_whole
from toxmod.redact import redact
from toxmod.runs.store import end_run, open_client
from toxmod.runs.tracking import PARENT_RUN_PREFIX
from toxmod.tables import rows_table

STATUS_FILE = "job_status.json"
T = TypeVar("T")


def _job() -> Any | None:
    try:
        hydra = HydraConfig.get()
    except ValueError:  # not inside a Hydra run (called from Python)
        return None
    return hydra if hydra.mode == RunMode.MULTIRUN else None


@dataclass(frozen=True)
class Sweep:
    """The multirun a job belongs to: its id (the sweep folder's name) and folder."""

    id: str
    folder: Path


def current_sweep() -> Sweep | None:
    """The sweep of the running Hydra job (None outside a multirun)."""
    hydra = _job()
    if hydra is None:
        return None
    folder = Path(str(hydra.sweep.dir))
    return Sweep(folder.name, folder)


def run_sweep_job(job: Callable[[], T]) -> T | None:
    """Run one job; inside a multirun a failure is printed and recorded, and the sweep goes on."""
    hydra = _job()
    if hydra is None:
        return job()
    folder = Path(hydra.runtime.output_dir)
    # what the job was asked (a search trial's place in its study is the study's bookkeeping)
    overrides = " ".join(o for o in hydra.overrides.task if not o.startswith("search_trial="))
    try:
        result = job()
    except StoppedEarly as stopped:  # a search pruned this trial: an outcome, not a failure
        console.print(printable(f"job {hydra.job.num} ({overrides}): {stopped}"))
        _write(folder, hydra.job.num, overrides, "pruned", str(stopped))
        return None
    except KeyboardInterrupt:
        _write(folder, hydra.job.num, overrides, "interrupted", "Ctrl-C")
        raise
    except Exception as error:  # noqa: BLE001 - any failure of one point must not stop the sweep
        reason = str(error) if isinstance(error, ToxmodError) else f"{type(error).__name__}: {error}"
        reason = redact((reason.strip().splitlines() or [type(error).__name__])[0])
        print(printable(f"error: job {hydra.job.num} ({overrides}): {reason}"), file=sys.stderr)
        _write(folder, hydra.job.num, overrides, "failed", reason)
        return None
    _write(folder, hydra.job.num, overrides, "skipped" if getattr(result, "skipped", False) else "done", "")
    return result


def _write(folder: Path, num: int, overrides: str, status: str, reason: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"job": int(num), "overrides": overrides, "status": status, "reason": reason}
    (folder / STATUS_FILE).write_text(json.dumps(record) + "\n")


class SweepSummary(Callback):
    """At the end of a multirun: one table of every job, and exit code 1 if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        records = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{STATUS_FILE}")]
        records.sort(key=lambda r: r["job"])
        if not records:
            return
        counts = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "pruned", "failed")}
        shared = (
            set.intersection(*(set(r["overrides"].split(" ")) for r in records))
            if len(records) > 1
            else set()
        )
        rows = [
            [r["job"], r["status"], _differing(r["overrides"], shared), r["reason"][:120]] for r in records
        ]
        title = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "pruned") + f" ({sweep_dir})"
        print_whole(rows_table(f"sweep: {title}", ["job", "status", "overrides", "reason"], rows))
        _end_parent_runs(sweep_dir, failed=bool(counts["failed"]))
        if counts["failed"]:
            searched = "search" in str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
            console.print(
                f"{counts['failed']} trial(s) failed; the study records them and a re-run continues it"
                if searched
                else f"{counts['failed']} job(s) failed; run the sweep again with resume=auto to retry them"
            )
            sys.exit(1)


def _differing(overrides: str, shared: set[str]) -> str:
    """A job's overrides without those every job has."""
    return " ".join(o for o in overrides.split(" ") if o not in shared)


def _end_parent_runs(sweep_dir: Path, failed: bool) -> None:
    """End the MLflow runs that group this sweep's jobs (one per experiment)."""
    for record in sweep_dir.glob(f"{PARENT_RUN_PREFIX}*.json"):
        parent = json.loads(record.read_text())
        reason = "a job of the sweep failed" if failed else None
        end_run(open_client(parent["uri"]), parent["run_id"], "FAILED" if failed else "FINISHED", reason)
