"""What a distillation sweep costs: 9 temperature x alpha points against 9 single student runs.

    python benchmarks/distill_sweep.py --teacher-run <finished teacher run dir>
    python benchmarks/distill_sweep.py                     # trains a tfidf_xgboost teacher first

Runs, as a user would and each as its own process: the sweep
`python -m toxmod.train -m experiment=janitr_kd teacher.run=<run> distill.temperature=1,2,4
distill.alpha=0.2,0.5,0.8` on an empty teacher cache, then one point of it alone (cache warm). The
teacher runs once, in the first job's cache build; every other job reads the cache. Reports the
sweep's wall time against 9 x the single run, the cache build, and how many jobs built the cache.
Writes `benchmarks/results/distill_sweep.json` and `docs/benchmarks_distill_sweep.md`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import DOCS, arguments, provenance, write_results


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = arguments(__doc__, "distill_sweep", markdown=DOCS / "benchmarks_distill_sweep.md")
    parser.add_argument("--teacher-run", default=None)
    parser.add_argument("--student", default="student=h128_l4_a4_i512 trainer.max_epochs=1")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    train = [sys.executable, "-m", "toxmod.train", "hardware=cpu", "tracking=none", "bootstrap=0"]
    where = [f"paths.output_dir={work / 'outputs'}", f"paths.multirun_dir={work / 'multirun'}"]
    teacher = args.teacher_run
    if teacher is None:
        teacher = str(work / "teacher")
        subprocess.run([*train, *where, f"hydra.run.dir={teacher}"], check=True, stdout=subprocess.DEVNULL)
    student = [
        "experiment=janitr_kd",
        f"teacher.run={teacher}",
        f"paths.cache_dir={work / 'cache'}",
        *args.student.split(),
        *where,
    ]
    grid = ["distill.temperature=1,2,4", "distill.alpha=0.2,0.5,0.8"]
    sweep_seconds = timed([*train[:3], "-m", *train[3:], *student, *grid])  # -m before the overrides
    jobs = [json.loads(p.read_text()) for p in sorted((work / "multirun").rglob("metrics.json"))]
    single_seconds = timed([*train, *student, "distill.temperature=2", "distill.alpha=0.5"])
    builds = [j for j in jobs if j.get("teacher/cache_built") == 1.0]
    record = {
        **provenance("distill_sweep.py"),
        "torch": torch.__version__,
        "jobs": len(jobs),
        "cache_builds": len(builds),
        "cache_build_seconds": builds[0].get("teacher/cache_build_seconds") if builds else None,
        "sweep_seconds": sweep_seconds,
        "single_run_seconds": single_seconds,
        "ratio_to_9_single_runs": sweep_seconds / (9 * single_seconds),
        "job_train_seconds": [j["train_seconds"] for j in jobs],
    }
    write_results(record, args.output, render(record), args.markdown)
    print(render(record))


def render(record: dict) -> str:
    build = record["cache_build_seconds"]
    return "\n".join(
        [
            "# Distillation sweep cost (janitr frozen split)",
            "",
            f"`{record['command']}` · {record['machine']} · {record['generated']}",
            "",
            "| what | value |",
            "|---|---|",
            f"| jobs in the sweep (temperature 1,2,4 x alpha 0.2,0.5,0.8) | {record['jobs']} |",
            f"| jobs that built the teacher cache | {record['cache_builds']} |",
            f"| teacher cache build (first job) | {build:.1f} s |" if build else "| cache build | - |",
            f"| sweep, one process, wall | {record['sweep_seconds']:.1f} s |",
            f"| one point alone (cache warm), wall | {record['single_run_seconds']:.1f} s |",
            f"| sweep / (9 x one point) | {record['ratio_to_9_single_runs']:.3f} |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
