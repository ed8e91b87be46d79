"""Classical-model benchmark: every classical model on janitr (frozen upstream split), jigsaw, jigsaw_levels
and davidson, trained through `toxmod.train` exactly as a user would run it.

Prints one table per dataset, writes ``benchmarks/results/classical.json`` and ``docs/benchmarks.md``.

    python benchmarks/classical.py                       # everything (about 25 min on 2 cores)
    python benchmarks/classical.py --suites janitr       # the janitr targets only (about 2 min)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import DOCS, arguments, shown_command, write_results

from toxmod.config import compose_config
from toxmod.evaluation.latency import measure_throughput
from toxmod.paths import project_root
from toxmod.progress import console
from toxmod.runs import load_run
from toxmod.stages.train import train
from toxmod.tables import rows_table

ROOT = project_root()
# Jigsaw has 57k train rows: the XGBoost stack uses fewer folds and n-grams there to stay in minutes.
JIGSAW_XGB = [
    "model.linear_folds=3",
    "model.linear_solver=liblinear",
    "model.max_features=100000",
    "model.char_ngrams=[3,5]",
]
# fastText on 54k long comments: both cores (hogwild training is then not bit-reproducible).
JIGSAW_FASTTEXT = ["model.thread=2", "model.quantize.cutoff=50000"]
SUITES: dict[str, dict[str, Any]] = {
    "janitr": {
        "data": ["data=janitr"],
        "models": {"tfidf_xgboost": [], "tfidf_logreg": [], "fasttext": []},
        "columns": [
            "scam/recall",
            "scam/fpr",
            "topic_crypto/recall",
            "macro_f1",
            "macro_f1_ci_low",
            "macro_f1_ci_high",
            "exact_match",
            "mean_roc_auc",
        ],
    },
    "jigsaw": {
        "data": ["data=jigsaw"],
        "models": {"tfidf_logreg": [], "tfidf_xgboost": JIGSAW_XGB, "fasttext": JIGSAW_FASTTEXT},
        "columns": ["mean_roc_auc", "toxic/roc_auc", "toxic/recall", "toxic/fpr", "macro_f1", "exact_match"],
    },
    "jigsaw_levels": {
        "data": ["data=jigsaw_levels"],
        "models": {"tfidf_logreg": [], "tfidf_xgboost": JIGSAW_XGB, "fasttext": JIGSAW_FASTTEXT},
        "columns": ["accuracy", "macro_f1", "weighted_f1", "severe/recall", "at_least_mild/fpr"],
    },
    "davidson": {
        "data": ["data=davidson", "split=stratified"],
        "models": {"tfidf_xgboost": [], "tfidf_logreg": [], "fasttext": []},
        "columns": ["accuracy", "macro_f1", "weighted_f1", "hate/recall", "at_least_offensive/fpr"],
    },
}
COST_COLUMNS = ["train_seconds", "scoring_texts_per_second", "model_size_bytes"]
# Targets for the default model on the janitr holdout (thresholds from calib at 2% FPR).
JANITR_TARGETS = {
    "scam/recall": (">=", 0.65),
    "scam/fpr": ("<=", 0.02),
    "macro_f1": (">=", 0.83),
    "train_seconds": ("<", 60.0),
}
PUBLISHED_JANITR = [
    ("upstream fastText .ftz (published)", 0.555, 0.016, 0.784),
    ("upstream distilled transformer int8, GPU (published)", 0.612, 0.012, 0.801),
]


def run_one(suite: str, model: str, overrides: list[str], tracking: list[str], threshold: list[str]) -> dict:
    cfg = compose_config(
        "train",
        [
            *SUITES[suite]["data"],
            f"model={model}",
            *overrides,
            *tracking,
            *threshold,
            "run_name=bench-" + model,
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        result = train(cfg, run_dir)
        split_sha = json.loads((run_dir / "holdout_eval.json").read_text())["split_sha256"]
        latency = measure_latency(run_dir)
    holdout = {k.removeprefix("holdout/"): v for k, v in result.metrics.items() if k.startswith("holdout/")}
    return {
        "suite": suite,
        "model": model,
        "overrides": overrides,
        "run_id": result.run_id,
        "split_sha256": split_sha,
        "holdout": holdout,
        "latency": latency,
        **{k: result.metrics[k] for k in COST_COLUMNS},
        **{
            k: result.metrics[k]
            for k in result.metrics
            if k.startswith("model_") and k.endswith("size_bytes")
        },
    }


def measure_latency(run_dir: Path) -> dict[str, dict[str, float]]:
    """Batch-1 and batch-64 throughput of the saved model on the same holdout texts (medians of 5 passes)."""
    run = load_run(run_dir)
    texts = list(run.part("holdout").texts)
    return {
        "batch_1": measure_throughput(run.scorer, texts[:200], batch_size=1).as_dict(),
        "batch_64": measure_throughput(run.scorer, texts[:1024], batch_size=64).as_dict(),
    }


def target_report(row: dict) -> dict[str, bool]:
    values = {**row["holdout"], "train_seconds": row["train_seconds"]}
    ops = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}
    return {name: bool(ops[op](float(values[name]), bound)) for name, (op, bound) in JANITR_TARGETS.items()}


def _cpu_summary() -> str:
    """The CPU, its instruction sets and the BLAS kernels in use: what the figures depend on."""
    import toxmod  # noqa: F401 - its OpenBLAS pin, as every run has it
    from toxmod.environment import blas, cpu

    info = cpu()
    kernels = ",".join(sorted({str(b.get("architecture")) for b in blas()})) or "none loaded"
    return f"{info['model']}, ISA {' '.join(info['isa'])}, OpenBLAS kernels {kernels}"


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{command}` on {platform.machine()} "
        f"({os.cpu_count()} cores, {_cpu_summary()}, Python {platform.python_version()}, CPU only). "
        "Every row is one "
        "`toxmod.train` run: thresholds chosen on `calib` at target FPR 0.02, metrics on `holdout` "
        "(the split hash is in each row's MLflow run). Throughput: median of 5 passes over the same holdout "
        "texts (200 at batch 1, 1,024 at batch 64) through the scoring interface, side by side in one run.",
        "",
        "Transformer (Lightning) results — the MiniLM janitr target, jigsaw, framework overhead and scoring "
        "throughput — are in [benchmarks_neural.md](benchmarks_neural.md) (`python benchmarks/neural.py`); "
        "[benchmark_notes.md](benchmark_notes.md) reads both.",
        "",
    ]
    for suite, spec in SUITES.items():
        rows = [r for r in results if r["suite"] == suite]
        if not rows:
            continue
        header = ["model", *spec["columns"], "train s", "texts/s b=1", "texts/s b=64", "size MB"]
        lines += [
            f"## {suite}",
            "",
            f"split `{rows[0]['split_sha256'][:16]}…`",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for r in rows:
            cells = [
                r["model"],
                *(f"{r['holdout'].get(c, float('nan')):.4f}" for c in spec["columns"]),
                f"{r['train_seconds']:.1f}",
                f"{r['latency']['batch_1']['median_texts_per_second']:.0f}",
                f"{r['latency']['batch_64']['median_texts_per_second']:.0f}",
                f"{r['model_size_bytes'] / 1e6:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if suite == "janitr":
            lines += [
                "",
                "Published on this exact holdout (dataset authors, thresholds on calib at 2% FPR):",
                "",
                "| model | scam/recall | scam/fpr | macro_f1 |",
                "|---|---|---|---|",
            ]
            lines += [f"| {name} | {r} | {f} | {m} |" for name, r, f, m in PUBLISHED_JANITR]
            default = next((r for r in rows if r["model"] == "tfidf_xgboost"), None)
            if default:
                met = target_report(default)
                lines += [
                    "",
                    "Targets for the default model: "
                    + ", ".join(
                        f"{k} {JANITR_TARGETS[k][0]} {JANITR_TARGETS[k][1]}: {'met' if v else 'NOT met'}"
                        for k, v in met.items()
                    ),
                ]
            fasttext = next((r for r in rows if r["model"] == "fasttext"), None)
            if fasttext and "model_quantized_size_bytes" in fasttext:
                lines += [
                    "",
                    f"fastText sizes: full `.bin` {fasttext['model_full_size_bytes'] / 1e6:.1f} MB, "
                    f"quantized `.ftz` {fasttext['model_quantized_size_bytes'] / 1e6:.2f} MB "
                    "(metrics above are for the `.ftz`).",
                ]
        lines.append("")
    return "\n".join(lines)


def merged(previous: list[dict], row: dict) -> list[dict]:
    """Results with ``row`` replacing any earlier row of the same suite and model (suite order kept)."""
    kept = [r for r in previous if (r["suite"], r["model"]) != (row["suite"], row["model"])]
    order = {(s, m): i for i, (s, spec) in enumerate(SUITES.items()) for m in spec["models"]}
    return sorted([*kept, row], key=lambda r: order.get((r["suite"], r["model"]), len(order)))


def command_line() -> str:
    return shown_command("classical.py", sys.argv[1:]).strip()


def save(results: list[dict], json_path: Path, markdown_path: Path) -> None:
    commands = list(dict.fromkeys(r.get("command", command_line()) for r in results))
    write_results(results, json_path, markdown(results, "`; `".join(commands)), markdown_path)


def main() -> None:
    parser = arguments(__doc__, "classical", markdown=DOCS / "benchmarks.md")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated: " + ", ".join(SUITES))
    parser.add_argument("--models", default=None, help="comma-separated subset of models")
    parser.add_argument("--tracking", default="mlflow", choices=["mlflow", "none"])
    parser.add_argument("--fresh", action="store_true", help="start from an empty results file")
    args = parser.parse_args()
    json_path, markdown_path = args.output, args.markdown
    # Results are merged into the JSON and written after every run: an interrupted benchmark keeps
    # what it finished, and a partial re-run (--suites/--models) updates only its own rows.
    results = [] if args.fresh or not json_path.is_file() else json.loads(json_path.read_text())
    suites = [s for s in args.suites.split(",") if s]
    for suite in suites:
        for model, overrides in SUITES[suite]["models"].items():
            if args.models and model not in args.models.split(","):
                continue
            start = time.perf_counter()
            row = run_one(suite, model, overrides, [f"tracking={args.tracking}"], [])
            row["wall_seconds"] = time.perf_counter() - start
            row["command"] = command_line()
            results = merged(results, row)
            save(results, json_path, markdown_path)
            console.print(
                f"{suite}/{model}: "
                + ", ".join(
                    f"{c}={row['holdout'].get(c, float('nan')):.4f}" for c in SUITES[suite]["columns"][:4]
                )
            )
    for suite in suites:
        rows = [r for r in results if r["suite"] == suite]
        columns = SUITES[suite]["columns"]
        console.print(
            rows_table(
                suite,
                ["model", *columns, "train_s", "texts/s b=1", "texts/s b=64", "size_mb"],
                [
                    [
                        r["model"],
                        *(r["holdout"].get(c) for c in columns),
                        r["train_seconds"],
                        r["latency"]["batch_1"]["median_texts_per_second"],
                        r["latency"]["batch_64"]["median_texts_per_second"],
                        r["model_size_bytes"] / 1e6,
                    ]
                    for r in rows
                ],
            )
        )
    console.print(f"wrote {json_path} and {markdown_path}")


if __name__ == "__main__":
    main()
