"""A 6-point sweep on this machine, two points at a time, with the joblib launcher and on a local Ray
instance (hydra/launcher=ray_cluster): wall time and how the sweep ended.

    python benchmarks/sweep_launchers.py                # -> benchmarks/results/sweep_launchers.json

Both sweep ``model=tfidf_logreg model.C=0.25,0.5,1,2,4,8`` on janitr (tracking off, no plots), one CPU
per point. The wall time includes starting the launcher's workers (Ray's instance).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
POINTS = ["data=janitr", "model=tfidf_logreg", "model.C=0.25,0.5,1,2,4,8", "tracking=none", "plots=false"]
POINTS += ["log_pyfunc=false", "latency.batch1_texts=0", "latency.batch64_texts=0", "bootstrap=0"]
LAUNCHERS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "ray": ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2"],
}


def main() -> None:
    args = arguments(__doc__, "sweep_launchers").parse_args()
    rows = []
    for name, launcher in LAUNCHERS.items():
        with tempfile.TemporaryDirectory(prefix="toxmod-sweep-") as tmp:
            command = [
                sys.executable,
                "-m",
                "toxmod.train",
                "-m",
                *launcher,
                *POINTS,
                f"paths.multirun_dir={tmp}",
            ]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
            seconds = time.perf_counter() - start
        summary = re.search(r"sweep: (\d+) done, (\d+) skipped, (\d+) failed", done.stdout)
        found = [int(x) for x in summary.groups()] if summary else [0, 0, 0]
        rows.append(
            {
                "launcher": name,
                "seconds": seconds,
                "done": found[0],
                "failed": found[2],
                "exit": done.returncode,
            }
        )
        print(
            f"{name:7s} {seconds:6.1f} s  {found[0]} done, {found[2]} failed (exit {done.returncode})",
            flush=True,
        )
    record = {**provenance("sweep_launchers.py"), "points": 6, "cpus": os.cpu_count(), "rows": rows}
    write_results(record, args.output)


if __name__ == "__main__":
    main()
