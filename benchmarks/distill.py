"""Knowledge distillation on the janitr frozen split: the same student with and without a teacher.

    python benchmarks/distill.py                                  # teacher tfidf_xgboost, seeds 0,1
    python benchmarks/distill.py --seeds 0 --temperature 4 --alpha 0.2

Trains the teacher once (the default janitr job), then, per seed, the student with `distill=none`
and with `distill=kd`, side by side in one process, as `python -m toxmod.train` does. The gain from KD
is reported per seed with a paired bootstrap interval of the holdout scam-recall difference (same
holdout rows resampled for both runs, each at its own calib thresholds). Writes
`benchmarks/results/distill.json` and `docs/benchmarks_distill.md`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toxmod.config import compose_config
from toxmod.paths import project_root
from toxmod.runs import load_run
from toxmod.stages.train import train

ROOT = project_root()
RESULTS = ROOT / "benchmarks" / "results" / "distill.json"
DOC = ROOT / "docs" / "benchmarks_distill.md"
COLUMNS = ["holdout/scam/recall", "holdout/scam/fpr", "holdout/macro_f1", "holdout/mean_roc_auc"]


def run(overrides: list[str], out: Path) -> tuple[dict[str, float], float]:
    cfg = compose_config("train", ["hardware=cpu", "tracking=none", *overrides])
    start = time.perf_counter()
    result = train(cfg, out)
    return result.metrics, time.perf_counter() - start


def holdout_decisions(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(predicted scam, true scam) per holdout row, at the run's own thresholds."""
    loaded = load_run(run_dir)
    holdout = loaded.part("holdout")
    scheme = loaded.dataset.scheme
    scores = loaded.scorer.predict_scores(list(holdout.texts))
    column = scheme.decision_names.index("scam")
    predicted = scheme.decision_scores(scores)[:, column] >= loaded.thresholds.as_array()[column]
    return predicted, scheme.decision_targets(holdout.targets)[:, column]


def paired_recall_gain(
    kd_dir: Path, plain_dir: Path, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """KD minus no-KD holdout scam recall, with a 95% paired bootstrap interval over holdout rows."""
    kd, truth = holdout_decisions(kd_dir)
    plain, _ = holdout_decisions(plain_dir)
    rng = np.random.default_rng(seed)
    positives = np.flatnonzero(truth)
    gains = []
    for _ in range(resamples):
        rows = rng.choice(positives, len(positives), replace=True)
        gains.append(kd[rows].mean() - plain[rows].mean())
    return {
        "gain": float(kd[positives].mean() - plain[positives].mean()),
        "ci_low": float(np.percentile(gains, 2.5)),
        "ci_high": float(np.percentile(gains, 97.5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--teacher", default="model=tfidf_xgboost", help="the teacher's overrides")
    parser.add_argument("--student", default="model=student student=h256_l4_a4_i1024")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    common = ["bootstrap=0", f"paths.cache_dir={work / 'cache'}"]
    teacher_dir = work / "teacher"
    teacher_metrics, teacher_seconds = run([*args.teacher.split(), *common], teacher_dir)
    rows: list[dict[str, Any]] = [
        {
            "run": "teacher",
            "overrides": args.teacher,
            **{c: teacher_metrics[c] for c in COLUMNS},
            "wall_seconds": teacher_seconds,
        }
    ]
    print(
        f"teacher: scam recall {teacher_metrics['holdout/scam/recall']:.4f} in {teacher_seconds:.0f} s",
        flush=True,
    )
    kd = [
        "distill=kd",
        f"distill.teacher={teacher_dir}",
        f"distill.temperature={args.temperature}",
        f"distill.alpha={args.alpha}",
    ]
    gains = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        dirs = {}
        for name, extra in (("student", []), ("student+kd", kd)):
            out = work / f"{name}-{seed}"
            metrics, seconds = run([*args.student.split(), *extra, f"seed={seed}", *common], out)
            dirs[name] = out
            rows.append(
                {
                    "run": name,
                    "overrides": " ".join([*extra[2:], f"seed={seed}"]),
                    **{c: metrics[c] for c in COLUMNS},
                    "wall_seconds": seconds,
                    "teacher_cache_built": metrics.get("teacher/cache_built"),
                }
            )
            print(
                f"{name} seed {seed}: scam recall {metrics['holdout/scam/recall']:.4f} "
                f"fpr {metrics['holdout/scam/fpr']:.4f} in {seconds:.0f} s",
                flush=True,
            )
        gain = paired_recall_gain(dirs["student+kd"], dirs["student"], seed=seed)
        gains.append({"seed": seed, **gain})
        print(
            f"seed {seed}: KD gain in holdout scam recall {gain['gain']:+.4f} "
            f"[{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]",
            flush=True,
        )
    record = {
        "command": "python benchmarks/distill.py "
        + " ".join(f"--{k}={shlex.quote(str(v))}" for k, v in vars(args).items()),
        "machine": f"{platform.machine()}, 2 cores, torch {torch.__version__}",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
        "gains": gains,
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    DOC.write_text(render(record))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")


def render(record: dict[str, Any]) -> str:
    lines = [
        "# Distillation benchmark (janitr frozen split)",
        "",
        f"`{record['command']}` · {record['machine']} · {record['when']}",
        "",
        "Thresholds from calib at target FPR 0.02; numbers on the holdout. Choose settings on valid.",
        "",
        "| run | overrides | " + " | ".join(c.removeprefix("holdout/") for c in COLUMNS) + " | wall s |",
        "|---|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    for row in record["rows"]:
        values = " | ".join(f"{row[c]:.4f}" for c in COLUMNS)
        lines.append(f"| {row['run']} | {row['overrides']} | {values} | {row['wall_seconds']:.0f} |")
    lines += [
        "",
        "KD gain in holdout scam recall (KD minus the same student without KD, same seed; 95% paired",
        "bootstrap interval over the holdout's scam rows):",
        "",
        "| seed | gain | 95% CI |",
        "|---|---|---|",
    ]
    for gain in record["gains"]:
        lines.append(
            f"| {gain['seed']} | {gain['gain']:+.4f} | [{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}] |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
