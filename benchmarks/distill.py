"""Knowledge distillation on the janitr frozen split: the same student with and without a teacher.

    python benchmarks/distill.py                                  # teacher tfidf_xgboost, seeds 0,1
    python benchmarks/distill.py --seeds 0 --temperature 4 --alpha 0.2
    python benchmarks/distill.py --teacher-run <dir> --variants student,student+kd,student+kd_hidden \
        --output distill_ensemble       # a finished teacher run, e.g. of experiment=janitr_teacher

Trains the teacher once (or reads a finished one), then, per seed, the student with `distill=none` and
each distillation variant, side by side in one process, as `python -m toxmod.train` does. The gain from KD
is reported per seed with a paired bootstrap interval of the holdout scam-recall difference (same
holdout rows resampled for both runs, each at its own calib thresholds). Writes
`benchmarks/results/<output>.json` and `docs/benchmarks_<output>.md`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import DOCS, arguments, provenance, write_results

from toxmod.config import compose_config
from toxmod.paths import project_root
from toxmod.runs import load_run
from toxmod.stages.train import train

ROOT = project_root()
COLUMNS = [
    "valid/scam/recall",
    "valid/macro_f1",
    "holdout/scam/recall",
    "holdout/scam/fpr",
    "holdout/macro_f1",
    "holdout/mean_roc_auc",
]


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


VARIANTS = {
    "student": [],
    "student+kd": ["distill=kd"],
    "student+kd_hidden": ["distill=kd_hidden"],
}


def main() -> None:
    parser = arguments(__doc__, "distill", markdown=DOCS / "benchmarks_distill.md")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--teacher", default="model=tfidf_xgboost", help="the teacher's overrides")
    parser.add_argument("--teacher-run", default=None, help="a finished teacher run dir (not retrained)")
    parser.add_argument("--student", default="model=student student=h256_l4_a4_i1024")
    parser.add_argument("--variants", default="student,student+kd", help=f"of {list(VARIANTS)}")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    common = ["bootstrap=0", f"paths.cache_dir={work / 'cache'}", f"paths.output_dir={work}"]
    if args.teacher_run:
        teacher_dir, teacher_seconds = Path(args.teacher_run), float("nan")
        teacher_metrics = json.loads((teacher_dir / "metrics.json").read_text())
    else:
        teacher_dir = work / "teacher"
        teacher_overrides = [*args.teacher.split(), *common, "bootstrap=1000"]
        teacher_metrics, teacher_seconds = run(teacher_overrides, teacher_dir)
    rows: list[dict[str, Any]] = [
        {
            "run": "teacher",
            "overrides": args.teacher_run or args.teacher,
            **{c: teacher_metrics.get(c, float("nan")) for c in COLUMNS},
            "recall_ci": [teacher_metrics.get(f"holdout/scam/recall_ci_{e}") for e in ("low", "high")],
            "wall_seconds": teacher_seconds,
        }
    ]
    print(f"teacher: scam recall {teacher_metrics['holdout/scam/recall']:.4f}", flush=True)
    kd = [
        f"teacher.run={teacher_dir}",
        f"distill.temperature={args.temperature}",
        f"distill.alpha={args.alpha}",
    ]
    gains = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        dirs = {}
        for name in args.variants.split(","):
            extra = [*VARIANTS[name], *kd] if VARIANTS[name] else []
            out = work / f"{name}-{seed}"
            metrics, seconds = run([*args.student.split(), *extra, f"seed={seed}", *common], out)
            dirs[name] = out
            shown = [o for o in extra if not o.startswith("teacher.run=")]
            rows.append(
                {
                    "run": name,
                    "seed": seed,
                    "overrides": " ".join([*shown, f"seed={seed}"]),
                    **{c: metrics[c] for c in COLUMNS},
                    "wall_seconds": seconds,
                    "teacher_cache_built": metrics.get("teacher/cache_built"),
                }
            )
            save(args, rows, gains)
            print(
                f"{name} seed {seed}: scam recall {metrics['holdout/scam/recall']:.4f} "
                f"fpr {metrics['holdout/scam/fpr']:.4f} (valid {metrics['valid/scam/recall']:.4f}) "
                f"in {seconds:.0f} s",
                flush=True,
            )
        for name in dirs:
            if name == "student" or "student" not in dirs:
                continue
            gain = paired_recall_gain(dirs[name], dirs["student"], seed=seed)
            gains.append({"seed": seed, "variant": name, **gain})
            print(
                f"seed {seed}: {name} gain in holdout scam recall {gain['gain']:+.4f} "
                f"[{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]",
                flush=True,
            )
        save(args, rows, gains)
    save(args, rows, gains)


def save(args: argparse.Namespace, rows: list[dict[str, Any]], gains: list[dict[str, Any]]) -> None:
    """Write the results so far (after every run: an interrupted benchmark keeps what it finished)."""
    record = {**provenance("distill.py"), "torch": torch.__version__, "rows": rows, "gains": gains}
    write_results(record, args.output, render(record), args.markdown)
    print(f"wrote {args.output} and {args.markdown}", flush=True)


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
    teacher = record["rows"][0]
    if teacher.get("recall_ci") and None not in teacher["recall_ci"]:
        low, high = teacher["recall_ci"]
        lines += ["", f"Teacher holdout scam recall 95% bootstrap interval: [{low:.4f}, {high:.4f}]."]
    means = {}
    for row in record["rows"][1:]:
        means.setdefault(row["run"], []).append(row)
    lines += ["", "Mean over seeds:", "", "| run | seeds | " + " | ".join(c for c in COLUMNS) + " |"]
    lines.append("|---|---|" + "---|" * len(COLUMNS))
    for name, group in means.items():
        values = " | ".join(f"{np.mean([r[c] for r in group]):.4f}" for c in COLUMNS)
        lines.append(f"| {name} | {len(group)} | {values} |")
    lines += [
        "",
        "Gain in holdout scam recall over the same student without a teacher (same seed; 95% paired",
        "bootstrap interval over the holdout's scam rows):",
        "",
        "| variant | seed | gain | 95% CI |",
        "|---|---|---|---|",
    ]
    for gain in record["gains"]:
        interval = f"[{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]"
        variant = gain.get("variant", "student+kd")
        lines.append(f"| {variant} | {gain['seed']} | {gain['gain']:+.4f} | {interval} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
