"""Weight averaging against none for a distilled student, over seeds: does it narrow the spread?

    python benchmarks/weight_averaging.py --teacher-run <finished janitr teacher run dir> [--epochs 4]

For each of ``model.weight_averaging=none|ema|swa`` and seeds 0, 1, 2: ``python -m toxmod.train
experiment=janitr_kd student=h128_l4_a4_i512`` with that teacher (the checkpoint rule fixed: the best
validation by the default monitor), valid and holdout scam recall / FPR and macro F1, and per variant
the spread (max - min) and standard deviation of holdout scam recall across the seeds. Writes
``benchmarks/results/weight_averaging.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("valid/scam/recall", "valid/scam/fpr", "holdout/scam/recall", "holdout/scam/fpr", "holdout/macro_f1")
VARIANTS = {
    "none": ["model.weight_averaging=none"],
    "ema": ["model.weight_averaging=ema"],
    "swa": ["model.weight_averaging=swa"],
}


def main() -> None:
    parser = arguments(__doc__, "weight_averaging")
    parser.add_argument("--teacher-run", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", default=None, help="where runs go (its cache/ is reused)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="weight-averaging-"))
    common = [
        "experiment=janitr_kd",
        "student=h128_l4_a4_i512",
        f"model.max_epochs={args.epochs}",
        f"teacher.run={args.teacher_run}",
        "hardware=cpu",
        "tracking=none",
        "plots=false",
        "log_pyfunc=false",
        "bootstrap=0",
        "latency.batch1_texts=0",
        "latency.batch64_texts=0",
        "checkpoint.keep_last=false",
        f"paths.root={work}",
    ]
    rows = []
    for name, settings in VARIANTS.items():
        for seed in range(args.seeds):
            folder = work / "runs" / f"{name}-{seed}"
            start = time.perf_counter()
            command = [sys.executable, "-m", "toxmod.train", *common, *settings, f"seed={seed}"]
            subprocess.run(
                [*command, f"hydra.run.dir={folder}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
            )
            metrics = json.loads((folder / "metrics.json").read_text())
            row = {"variant": name, "seed": seed, "seconds": time.perf_counter() - start}
            rows.append(row | {k: metrics[k] for k in SHOWN})
    spread = {}
    for name in VARIANTS:
        recalls = [r["holdout/scam/recall"] for r in rows if r["variant"] == name]
        spread[name] = {
            "holdout_recall_mean": statistics.mean(recalls),
            "holdout_recall_spread": max(recalls) - min(recalls),
            "holdout_recall_stdev": statistics.stdev(recalls) if len(recalls) > 1 else 0.0,
        }
    result = {
        **provenance("weight_averaging.py"),
        "rows": rows,
        "by_variant": spread,
    }
    write_results(result, args.output)
    print("| variant | seed | " + " | ".join(SHOWN) + " |\n|---|---|" + "---|" * len(SHOWN))
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | " + " | ".join(f"{row[k]:.3f}" for k in SHOWN) + " |")
    print("\n| variant | holdout scam recall, mean | spread (max - min) | stdev |\n|---|---|---|---|")
    for name, values in spread.items():
        cells = (
            values["holdout_recall_mean"],
            values["holdout_recall_spread"],
            values["holdout_recall_stdev"],
        )
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")


if __name__ == "__main__":
    main()
