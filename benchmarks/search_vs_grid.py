"""A search against the grid it replaces: the distillation sweep temperature x alpha x student x
learning rate on the janitr frozen split, once as the full Hydra grid and once as an Optuna search
(``search=kd_student``, TPE + median pruning) over the same ranges with half the grid's trials.

    python benchmarks/search_vs_grid.py --teacher-run <finished teacher run dir>
    python benchmarks/search_vs_grid.py                     # trains a tfidf_xgboost teacher first

Both arms run as a user would, each one command and one process, one job at a time (2 threads each
on this machine), after one warm-up run that fills the teacher cache (neither arm pays for it).
Reported: each arm's wall time, its best valid operating point (the primary decision's valid recall
at its calibrated threshold), when the search first reached the grid's best, and each arm's best run
with its valid and holdout numbers side by side (the holdout never chooses). Writes
``benchmarks/results/search_vs_grid.json`` and prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
GRID = {  # the grid's points; the search samples the ranges they span (conf/search/kd_student.yaml)
    "distill.temperature": [1.0, 4.0],
    "distill.alpha": [0.2, 0.7],
    "student": ["h128_l4_a4_i512", "h192_l4_a4_i768"],
    "model.optimizer.lr": [5.0e-4, 2.0e-3],
}
SPACE = [
    "search.params.student.choices=[h128_l4_a4_i512,h192_l4_a4_i768]",
    "search.params.distill.temperature.low=1.0",
    "search.params.distill.temperature.high=4.0",
    "search.params.distill.alpha.low=0.2",
    "search.params.distill.alpha.high=0.7",
    "search.params.model.optimizer.lr.low=5e-4",
    "search.params.model.optimizer.lr.high=2e-3",
]
METRIC = "valid/scam/recall"  # each arm's best: the highest among runs within their FPR budget on valid
SHOWN = (
    "valid/scam/recall",
    "valid/scam/fpr",
    "valid/macro_f1",
    "holdout/scam/recall",
    "holdout/scam/fpr",
    "holdout/macro_f1",
)


def toxmod(args: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "toxmod.train", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode not in (0, 1):  # 1: a failed point (recorded) still leaves the others
        raise SystemExit(f"python -m toxmod.train {' '.join(args)} failed ({done.returncode}); see {log}")
    return time.perf_counter() - start


def within_budget(metrics: dict[str, float]) -> bool:
    """What select requires to crown a run: every decision's valid FPR within its budget (one negative)."""
    from toxmod.runs.budget import excesses

    return all(excess <= 1e-12 for _, excess in excesses(metrics).values())


def best_of(runs: list[dict], crownable_only: bool) -> dict | None:
    """The best valid operating point among the runs select could crown (or among all)."""
    kept = [r for r in runs if r["metrics"] and (within_budget(r["metrics"]) or not crownable_only)]
    return max(kept, key=lambda r: r["metrics"][METRIC]) if kept else None


def run_metrics(folder: Path) -> dict[str, float] | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    parser = arguments(__doc__, "search_vs_grid")
    parser.add_argument("--teacher-run", help="a finished janitr teacher run (default: train tfidf_xgboost)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--work", default=None, help="where runs go (default: a temporary folder)")
    parser.add_argument("--rows", type=int, default=None, help="data.max_rows (a smoke run; default: all)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="search-vs-grid-"))
    work.mkdir(parents=True, exist_ok=True)
    places = [
        f"paths.root={work}",
        f"tracking.uri=sqlite:///{work / 'mlruns.db'}",
        f"tracking.artifact_root={work / 'mlartifacts'}",
        *([f"data.max_rows={args.rows}"] if args.rows else []),
    ]
    common = [
        "experiment=janitr_kd",
        "hardware=cpu",
        "plots=false",
        "log_pyfunc=false",
        "bootstrap=0",
        "latency.batch1_texts=0",
        "latency.batch64_texts=0",
        *places,
    ]
    teacher = args.teacher_run
    if teacher is None:
        toxmod(["data=janitr", *places, f"hydra.run.dir={work / 'teacher'}"], work / "teacher.log")
        teacher = str(work / "teacher")
    common.append(f"teacher.run={teacher}")
    arm = [*common, f"model.max_epochs={args.epochs}"]  # what both arms run
    # one student run first: it builds the teacher cache both arms then read
    warm = toxmod(
        [*common, "student=h128_l4_a4_i512", "model.max_epochs=1", f"hydra.run.dir={work / 'warm'}"],
        work / "warm.log",
    )

    points = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    sweep = [f"{key}={','.join(str(v) for v in values)}" for key, values in GRID.items()]
    grid_dir = work / "grid"
    grid_started = time.time()
    grid_seconds = toxmod(["-m", *arm, *sweep, f"hydra.sweep.dir={grid_dir}"], work / "grid.log")
    grid_runs = []
    for job in sorted(grid_dir.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1):
        metrics = run_metrics(job) if job.name.isdigit() else None
        if metrics is not None:
            finished = (job / "metrics.json").stat().st_mtime - grid_started
            grid_runs.append({"job": int(job.name), "metrics": metrics, "seconds": finished})
    grid_best = best_of(grid_runs, crownable_only=True)
    target = grid_best or best_of(grid_runs, crownable_only=False)  # what the search has to reach
    assert target is not None, "no grid run finished"

    n_trials = len(points) // 2
    search_dir = work / "search"
    search_started = time.time()
    search_seconds = toxmod(
        [
            "-m",
            *arm,
            "search=kd_student",
            f"search.n_trials={n_trials}",
            *SPACE,
            f"hydra.sweep.dir={search_dir}",
        ],
        work / "search.log",
    )
    import optuna

    [db] = (work / "searches").glob("*.db")
    study = optuna.load_study(study_name=db.stem, storage=f"sqlite:///{db}")
    trials = []
    for trial in study.trials:
        metrics = run_metrics(Path(trial.user_attrs.get("toxmod.run_dir", "/nonexistent")))
        done_at = trial.datetime_complete.timestamp() - search_started if trial.datetime_complete else None
        trials.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.values[0] if trial.values else None,
                "params": trial.params,
                "seconds": done_at,
                "metrics": metrics,
            }
        )
    complete = [t for t in trials if t["state"] == "complete" and t["metrics"]]
    search_best = best_of(complete, crownable_only=True)
    reached = [
        t["seconds"]
        for t in complete
        if t["metrics"][METRIC] >= target["metrics"][METRIC]
        and (within_budget(t["metrics"]) or grid_best is None)
    ]
    result = {
        **provenance("search_vs_grid.py"),
        "epochs": args.epochs,
        "warm_up_seconds": warm,
        "grid": {
            "points": len(points),
            "seconds": grid_seconds,
            "within_budget": sum(within_budget(r["metrics"]) for r in grid_runs),
            "best": grid_best,
            "best_any": best_of(grid_runs, crownable_only=False),
            "runs": grid_runs,
        },
        "search": {
            "trials": n_trials,
            "seconds": search_seconds,
            "pruned": sum(t["state"] == "pruned" for t in trials),
            "within_budget": sum(within_budget(t["metrics"]) for t in complete),
            "best": search_best,
            "best_any": best_of(complete, crownable_only=False),
            "reached_grid_best_seconds": min(reached) if reached else None,
            "trials_detail": trials,
        },
    }
    write_results(result, args.output)
    print(table(result))


def table(result: dict) -> str:
    """One row per arm: its cost, how many runs select could crown, the best of those (its valid and
    holdout numbers) and the best valid operating point of any run."""
    grid, search = result["grid"], result["search"]
    reached = search["reached_grid_best_seconds"]
    lines = [
        "| arm | runs | wall s | within FPR budget on valid | best crownable "
        + " | ".join(SHOWN)
        + f" | reached the grid's best after | best {METRIC} of any run |",
        "|---|---|---|---|" + "---|" * len(SHOWN) + "---|---|",
    ]
    arms = (
        ("grid", grid, f"{grid['points']}"),
        ("search (TPE + median pruning)", search, f"{search['trials']} ({search['pruned']} pruned)"),
    )
    for name, arm, runs in arms:
        best = (arm["best"] or {}).get("metrics") or {}
        cells = " | ".join(f"{best[k]:.3f}" if k in best else "-" for k in SHOWN)
        if name == "grid":
            when = f"{grid['best']['seconds']:.0f} s" if grid["best"] else "-"
        else:
            when = f"{reached:.0f} s" if reached is not None else "not reached"
        any_best = arm["best_any"]["metrics"][METRIC]
        head = f"| {name} | {runs} | {arm['seconds']:.0f} | {arm['within_budget']}"
        lines.append(f"{head} | {cells} | {when} | {any_best:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
