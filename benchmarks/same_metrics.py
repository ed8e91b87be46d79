"""The default run at two revisions of the code, side by side: every recorded number that is not a
time must be identical (a restructuring changes no result).

    python benchmarks/same_metrics.py --base <git revision>     # -> benchmarks/results/same_metrics.json
    python benchmarks/same_metrics.py --base HEAD~1 -- model=tfidf_logreg

Each revision runs ``python -m toxmod.train tracking=none`` (plus the overrides after ``--``) from its
own checkout (a temporary ``git worktree`` for ``--base``, this checkout for the other) on the same
data and machine; the table lists every metric that differs, and the JSON holds both sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
TIMES = ("seconds", "latency/", "per_second", "/time")  # wall-clock numbers: never compared


def run_default(checkout: Path, out: Path, overrides: list[str]) -> dict[str, float]:
    """The metrics of the default run trained by the code in ``checkout``."""
    datasets = os.environ.get("TOXMOD_DATASETS", str(ROOT.parent / "shared" / "datasets"))
    env = {**os.environ, "TOXMOD_ROOT": str(out), "TOXMOD_DATASETS": datasets, "PYTHONPATH": str(checkout)}
    command = [
        sys.executable,
        "-m",
        "toxmod.train",
        "tracking=none",
        f"hydra.run.dir={out / 'run'}",
        *overrides,
    ]
    done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: the run failed\n{done.stderr[-2000:]}")
    return json.loads((out / "run" / "metrics.json").read_text())


def main() -> None:
    parser = arguments(__doc__, "same_metrics")
    parser.add_argument("--base", required=True, help="the git revision to compare this checkout with")
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    with tempfile.TemporaryDirectory(prefix="toxmod-same-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True
        )
        try:
            before = run_default(base, Path(tmp) / "out-base", overrides)
            after = run_default(ROOT, Path(tmp) / "out-head", overrides)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)
    compared = sorted(k for k in set(before) | set(after) if not any(t in k for t in TIMES))
    differing = [k for k in compared if before.get(k) != after.get(k)]
    print(f"{len(compared)} metrics compared (times left out), {len(differing)} differ")
    print(f"{'metric':48s} {args.base:>14s} {'this checkout':>14s}")
    for key in differing or ["holdout/scam/recall", "holdout/scam/fpr", "holdout/macro_f1"]:
        print(f"{key:48s} {before.get(key, float('nan')):>14.6f} {after.get(key, float('nan')):>14.6f}")
    result = {"base": args.base, "overrides": overrides, "compared": len(compared), "differing": differing}
    write_results(
        {**provenance("same_metrics.py"), **result, "base_metrics": before, "metrics": after}, args.output
    )
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
