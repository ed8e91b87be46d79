"""Two training processes side by side: each with its share of the CPUs, against each with all of them.

    python benchmarks/threads.py                     # -> benchmarks/results/threads.json, a table
    python benchmarks/threads.py --steps 40 --repeats 1

Both arms run the same two jobs (a small from-scratch student on 1,500 janitr rows, ``--steps``
optimizer steps, seeds 0 and 1) at the same time:

- ``share`` -- a 2-job joblib sweep with the default ``hardware.threads`` (null): each job gets its
  share of the CPUs this machine lets the process use (``cpus // n_jobs``);
- ``oversubscribed`` -- two independent processes started at once, each with ``hardware.threads`` set
  to every CPU (what each process did before the default followed its share).

It prints the wall time of each arm (median of ``--repeats``) and the threads each job recorded.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
JOB = ["model=student", "student=h128_l4_a4_i512", "data=janitr", "data.max_rows=1500", "model.max_length=64"]
JOB += ["bootstrap=0", "plots=false", "log_pyfunc=false", "latency.batch1_texts=0", "latency.batch64_texts=0"]
JOB += ["tracking=none", "evaluate_splits=[calib,holdout]"]


def _env(root: Path) -> dict[str, str]:
    datasets = os.environ.get("TOXMOD_DATASETS", str(ROOT.parent / "shared" / "datasets"))
    return {**os.environ, "TOXMOD_ROOT": str(root), "TOXMOD_DATASETS": datasets, "PYTHONWARNINGS": "ignore"}


def share_arm(root: Path, steps: int) -> tuple[float, list[str]]:
    """A 2-job joblib sweep with the default threads."""
    command = [sys.executable, "-m", "toxmod.train", "-m", *JOB, f"trainer.max_steps={steps}", "seed=0,1"]
    command += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"paths.multirun_dir={root / 'multirun'}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=root, env=_env(root), check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    configs = [p for p in sorted(root.glob("multirun/**/config.yaml")) if ".hydra" not in p.parts]
    threads = [str(yaml.safe_load(p.read_text())["hardware"]["threads"]) for p in configs]
    return seconds, threads


def oversubscribed_arm(root: Path, steps: int, cpus: int) -> tuple[float, list[str]]:
    """Two processes at once, each with every CPU's worth of threads."""
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "toxmod.train", *JOB, f"trainer.max_steps={steps}", f"seed={seed}"]
            + [f"hardware.threads={cpus}", f"hydra.run.dir={root / f'run{seed}'}"],
            cwd=root,
            env=_env(root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(err[-2000:])
    return time.perf_counter() - start, [str(cpus)] * 2


def main() -> None:
    parser = arguments(__doc__, "threads")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    results: dict[str, list[float]] = {"share": [], "oversubscribed": []}
    recorded: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for arm in ("share", "oversubscribed"):
            with tempfile.TemporaryDirectory(prefix="toxmod-threads-") as tmp:
                if arm == "share":
                    seconds, threads = share_arm(Path(tmp), args.steps)
                else:
                    seconds, threads = oversubscribed_arm(Path(tmp), args.steps, cpus)
            results[arm].append(seconds)
            recorded[arm] = threads
            print(f"repeat {repeat + 1}: {arm:<15} {seconds:6.1f} s (threads per job {threads})", flush=True)
    medians = {arm: statistics.median(times) for arm, times in results.items()}
    print(f"\n| arm | threads per job | wall s (median of {args.repeats}) |\n|---|---|---|")
    for arm, seconds in medians.items():
        print(f"| {arm} | {', '.join(recorded[arm])} | {seconds:.1f} |")
    ratio = medians["oversubscribed"] / medians["share"]
    print(f"\noversubscribed / share: {ratio:.2f}x on {cpus} CPUs, {args.steps} steps per job")
    payload = {**provenance("threads.py"), "cpus": cpus, "steps": args.steps, "seconds": results}
    payload |= {"median": medians, "ratio": ratio, "threads": recorded}
    write_results(payload, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
