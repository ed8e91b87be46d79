"""The runs stage: settle what dead processes left behind in the tracking store (``runs gc``), and
show one run's record and the environment its numbers came from (``runs show``)."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console

from toxmod.config import instantiate_component, spec_of
from toxmod.environment import numeric_fingerprint
from toxmod.errors import ConfigError
from toxmod.files import read_json
from toxmod.progress import console, styled, warn
from toxmod.runs.gc import PROCESS_DIED, Collected, collect
from toxmod.runs.opening import locate_run
from toxmod.runs.record import RunDir
from toxmod.runs.store import NoStore
from toxmod.spec import PathsSpec


def collect_runs(cfg: DictConfig) -> Collected:
    """Mark RUNNING runs whose process is gone FAILED ("process died"); report what was done."""
    store = instantiate_component(cfg.tracking, "tracking").store()
    if isinstance(store, NoStore):
        raise ConfigError("runs gc reads the MLflow store; it cannot run with tracking=none")
    paths = spec_of(PathsSpec, cfg.paths)
    folders = [paths.output_dir, paths.multirun_dir]
    result = collect(store, int(cfg.max_runs), bool(cfg.remove_failed), folders)
    report(result)
    return result


def report(result: Collected, out: Console = console) -> None:
    for run_id in result.failed:
        out.print(f"run {run_id}: RUNNING, but its process is gone -> FAILED ({PROCESS_DIED})")
    for run_id in result.completed:
        out.print(f"run {run_id}: FINISHED; its holdout_eval.json was still pending -> put in place")
    if result.unknown:
        out.print(f"{len(result.unknown)} RUNNING run(s) of other hosts left as they are")
    for folder in result.removed:
        out.print(f"removed the folder of a failed run: {folder}")
    for reason in result.refused:
        warn(f"not written into: {reason}")


def show_run(cfg: DictConfig) -> None:
    """``run=<dir | id | models:/name@alias>``: the run's model, split, thresholds, holdout headline and
    its ``environment.json`` (Python, OS, CPU and instruction sets, library versions, threads, GPU)."""
    if not cfg.get("run"):
        raise ConfigError("runs show needs run=<run dir, MLflow run id or models:/name@alias>")
    store = instantiate_component(cfg.tracking, "tracking").store()
    run = locate_run(str(cfg.run), store, spec_of(PathsSpec, cfg.paths).downloads)
    record = read_json(run.holdout_eval)
    console.print(
        styled(str(run.path), f" · {record.get('model')} · split {str(record.get('split_sha256'))[:16]}")
    )
    for name, value in (record.get("thresholds") or {}).items():
        recall, fpr = (record["metrics"].get(f"{name}/{m}") for m in ("recall", "fpr"))
        console.print(f"  {name}: threshold {value:.4f} · holdout recall {recall} · FPR {fpr}")
    path = run / RunDir.ENVIRONMENT
    if not path.is_file():
        console.print(f"{RunDir.ENVIRONMENT}: not recorded (a run made before toxmod recorded it)")
        return
    env = read_json(path)
    cpu = env.get("cpu", {})
    console.print(f"environment ({RunDir.ENVIRONMENT}, fingerprint {numeric_fingerprint(env)}):")
    console.print(f"  python {env.get('python')} · {env.get('os')}")
    console.print(f"  cpu {cpu.get('model')} · {cpu.get('cores')} cores · isa {','.join(cpu.get('isa', []))}")
    console.print(f"  threads {env.get('threads')} · gpu {env.get('gpu')} · settings {env.get('settings')}")
    console.print("  " + " · ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()), soft_wrap=True)
