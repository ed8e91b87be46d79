"""Serving benchmark: every model kind through ``toxmod.predict``'s code path, side by side.

For each model (tfidf_xgboost, tfidf_logreg, fastText; the transformer student in torch eager and as
its ONNX fp32 / int8 export; MiniLM in torch eager, and as ONNX with ``--minilm-onnx``) and each thread
count, one fresh process opens the run with ``Predictor.open`` and scores the same janitr holdout
texts: one text per call and 64 per call (texts/s: median of 3 passes; p50 / p95 ms over every one-text
call). Size is what scoring reads from disk; peak RSS is the process's high-water mark. Beside each row:
the run's holdout primary-label recall and FPR at its own calib thresholds, and macro F1, scored in
that row's format. ``tfidf_xgboost/sklearn-xgboost-calls`` scores the same model through
scikit-learn's transforms and XGBoost's ``predict_proba`` (the path before the batch-1 work), for the
ratio. Then ``python -m toxmod.predict`` scores 10,000 texts from a file with the int8 student, timed
end to end from process start.

    python benchmarks/serving.py [--student <run dir>] [--student-onnx <its export>] [--minilm <run dir>]

Runs not given are trained on janitr (tracking=none) in ``--workdir`` and the student is exported
there. Prints a table, writes ``benchmarks/results/serving.json`` and ``docs/benchmarks_serving.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import DOCS, arguments, provenance, write_results
from operating_point import flip_rate, operating_point

ROOT = Path(__file__).resolve().parents[1]
TEXTS = 1000
BATCH = 64
PREDICT_TEXTS = 10_000
CLASSICAL = ("tfidf_xgboost", "tfidf_logreg", "fasttext")
NEURAL = ("student", "minilm")
TARGETS = {
    "student int8: size MB <= 5": lambda r: r["student/onnx-int8"]["size_mb"] <= 5,
    "student int8 >= 1,000 texts/s at batch 64": lambda r: r["student/onnx-int8"]["b64_texts_per_s"] >= 1000,
    "student int8 at batch 64 >= 2x its batch 1": lambda r: r["ratios"]["student_int8_b64_vs_b1"] >= 2,
    "student int8 flips <= 1% of holdout decisions vs fp32": lambda r: (
        r["student_int8_holdout_flip_rate"] <= 0.01
    ),
    "tfidf_xgboost >= 2,000 texts/s at batch 64": lambda r: (
        r["tfidf_xgboost/native"]["b64_texts_per_s"] >= 2000
    ),
    "predict 10,000 texts (int8 student) <= 8 s": lambda r: r["predict_10k_seconds"] <= 8,
}


# -- one model, one process ---------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over from the parent
    across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(run_dir: str, onnx_format: str | None, threads: int, texts_file: str) -> dict[str, Any]:
    """Open the run as ``toxmod.predict`` does and time it on the texts (runs in its own process)."""
    from toxmod.hardware import apply_threads, resolve_hardware
    from toxmod.spec import HardwareSpec
    from toxmod.stages.predict import Predictor

    hardware = resolve_hardware(HardwareSpec.of({"accelerator": "cpu", "threads": threads}))
    apply_threads(hardware)
    texts = json.loads(Path(texts_file).read_text())
    start = time.perf_counter()
    predictor = Predictor.open(run_dir, hardware=hardware)
    if onnx_format == "reference":
        predictor.scorer.predict_scores = reference_scores(predictor.scorer)
    elif onnx_format is not None:
        predictor.scorer.score_with = onnx_format
    predictor.predict(texts[:8])  # first call: sessions, lazy tables
    load_seconds = time.perf_counter() - start
    for text in texts[:20]:
        predictor.predict([text])
    calls, one_passes = [], []
    for _ in range(3):
        begin = time.perf_counter()
        for text in texts:
            call = time.perf_counter()
            predictor.predict([text])
            calls.append((time.perf_counter() - call) * 1000)
        one_passes.append(len(texts) / (time.perf_counter() - begin))
    passes = []
    for _ in range(3):
        begin = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            predictor.predict(texts[i : i + BATCH])
        passes.append(len(texts) / (time.perf_counter() - begin))
    model_dir = Path(run_dir) / "model"
    size = predictor.scorer.size_bytes(model_dir)
    ordered = sorted(calls)
    return {
        "threads": threads,
        "texts": len(texts),
        "b1_texts_per_s": statistics.median(one_passes),
        "b1_p50_ms": statistics.median(calls),
        "b1_p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
        "b64_texts_per_s": statistics.median(passes),
        "size_mb": size / 1e6,
        "peak_rss_mb": peak_rss_mb(),
        "load_seconds": load_seconds,
    }


def reference_scores(scorer: Any) -> Any:
    """A TF-IDF model scored the way it was before the batch-1 path: scikit-learn's transforms and
    ``sparse.hstack``, ``decision_function``, ``XGBClassifier.predict_proba`` (the same scores)."""
    import numpy as np
    from scipy import sparse

    from toxmod.models.text_features import text_statistics

    def predict_scores(texts: list[str]) -> Any:
        featurizer = scorer.featurizer
        parts = [featurizer.word.transform(texts)]
        if featurizer.char is not None:
            parts.append(featurizer.char.transform(texts))
        if featurizer.text_stats:
            parts.append(sparse.csr_matrix(text_statistics(texts).astype(np.float32)))
        features = sparse.hstack(parts, format="csr")
        columns = []
        for estimator, k in zip(scorer.estimators, scorer.task_columns):
            if hasattr(estimator, "booster"):
                linear = (
                    estimator.linear.decision_function(features) if estimator.linear is not None else None
                )
                probabilities = estimator.booster.predict_proba(estimator.tree_features(features, linear))
            else:
                probabilities = estimator.predict_proba(features)
            columns.append(probabilities[:, 1:2] if k == 1 else probabilities)
        return np.concatenate(columns, axis=1).astype(np.float64)

    return predict_scores


def measure_in_process(run_dir: Path, onnx_format: str | None, threads: int, texts_file: Path) -> dict:
    command = [sys.executable, __file__, "--measure", str(run_dir), "--threads", str(threads)]
    command += ["--texts-file", str(texts_file)] + (["--format", onnx_format] if onnx_format else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        raise RuntimeError(f"measuring {run_dir} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def quality(run_dir: Path, onnx_format: str | None) -> dict[str, Any]:
    """Holdout primary-label recall and FPR at the run's own thresholds, and macro F1, with the run
    scoring in ``onnx_format`` (an export's thresholds were fit on its int8 scores)."""
    from toxmod.runs import load_run

    loaded = load_run(run_dir)
    if onnx_format in ("fp32", "int8"):
        loaded.scorer.score_with = onnx_format
    holdout, scheme = loaded.part("holdout"), loaded.dataset.scheme
    scores = loaded.scorer.predict_scores(list(holdout.texts))
    return {
        "primary": scheme.primary_label,
        **operating_point(scheme, scores, holdout.targets, loaded.thresholds.as_array()),
        "holdout_rows": len(holdout),
        "target_fpr": loaded.config["threshold"].get("target_fpr"),
    }


# -- preparing the runs -------------------------------------------------------------------------


def trained(model: str, workdir: Path) -> Path:
    from toxmod.config import compose_config
    from toxmod.stages.train import train

    run_dir = workdir / model
    if not (run_dir / "holdout_eval.json").is_file():
        cfg = compose_config("train", ["data=janitr", f"model={model}", "tracking=none", "bootstrap=0"])
        train(cfg, run_dir)
    return run_dir


def exported(source: Path, name: str, workdir: Path) -> Path:
    from toxmod.config import compose_config
    from toxmod.stages.export import export

    run_dir = workdir / f"{name}-onnx"
    if not (run_dir / "holdout_eval.json").is_file():
        cfg = compose_config("export", [f"run={source}", "tracking=none"])
        export(cfg, run_dir)
    return run_dir


def holdout_texts(run_dir: Path, n: int) -> list[str]:
    from toxmod.runs import load_run

    return list(load_run(run_dir).part("holdout").texts)[:n]


def flip_rate_vs_fp32(export_dir: Path, texts: list[str]) -> float:
    """Share of the texts whose decisions (at the int8 run's thresholds) differ between int8 and fp32."""
    from toxmod.stages.predict import Predictor

    predictor = Predictor.open(export_dir)
    scores = {}
    for name in ("int8", "fp32"):
        predictor.scorer.score_with = name
        scores[name] = predictor.scorer.predict_scores(texts)
    return flip_rate(predictor.scheme, scores["int8"], scores["fp32"], predictor.thresholds.as_array())


def predict_10k(export_dir: Path, texts: list[str], workdir: Path) -> float:
    """Seconds for ``python -m toxmod.predict`` on a 10,000-line file, process start included."""
    source = workdir / "predict_10k.txt"
    lines = [" ".join(text.split()) for text in texts if text.strip()]
    source.write_text("\n".join((lines * (PREDICT_TEXTS // len(lines) + 1))[:PREDICT_TEXTS]) + "\n")
    output = workdir / "predict_10k.jsonl"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "toxmod.predict",
            f"run={export_dir}",
            f"input={source}",
            f"output={output}",
            "tracking=none",
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    assert sum(1 for _ in output.open()) == PREDICT_TEXTS
    return seconds


# -- the report ---------------------------------------------------------------------------------


def best(results: dict[str, dict[int, dict]], name: str, key: str) -> float:
    return max(result[key] for result in results[name].values())


def report(results: dict[str, Any], command: str) -> str:
    rows = results["rows"]
    lines = [
        "# Serving benchmark",
        "",
        f"Generated {results['generated']} by `{command}` on {results['machine']}. Every row is one fresh "
        f"process that opens the run with `Predictor.open` (the code path of `python -m toxmod.predict` "
        f"and `toxmod.load`) and scores the same {results['texts']} janitr holdout texts: one text per "
        f"call and {BATCH} per call (texts/s: median of 3 passes; p50 / p95: ms over every one-text "
        "call). Size is what scoring reads from disk (for an ONNX run: the scored graph and the "
        "tokenizer); peak RSS is the process's high-water mark (VmHWM). "
        "`tfidf_xgboost/sklearn-xgboost-calls` is the same model scored through scikit-learn's "
        "transforms and XGBoost's `predict_proba`, the path before the batch-1 work (same scores).",
        "",
        *(
            [
                f"Re-measured in this run: rows starting with {', '.join(results['remeasured'])}; the "
                "other rows are the previous run's (same texts, same runs, same machine).",
                "",
            ]
            if results.get("remeasured") and results["remeasured"] != ["all rows"]
            else []
        ),
        "| model | format | threads | texts/s b=1 | p50 ms | p95 ms | texts/s b=64 | size MB | peak RSS MB "
        f"| load s | {results['primary']} R @ FPR | macro F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_threads in rows.items():
        model, variant = name.split("/")
        q = results["quality"][name]
        for threads, r in sorted(by_threads.items()):
            lines.append(
                f"| {model} | {variant} | {threads} | {r['b1_texts_per_s']:.0f} | {r['b1_p50_ms']:.2f} | "
                f"{r['b1_p95_ms']:.2f} | {r['b64_texts_per_s']:.0f} | {r['size_mb']:.2f} | "
                f"{r['peak_rss_mb']:.0f} | {r['load_seconds']:.1f} | {q['recall']:.4f} @ {q['fpr']:.4f} | "
                f"{q['macro_f1']:.4f} |"
            )
    ratios = results["ratios"]
    lines += [
        "",
        f"Quality: holdout ({results['holdout_rows']} rows), each row's run at its own calib thresholds "
        f"(target FPR {results['target_fpr']}), scored in that row's format (an export's thresholds were "
        "fit on its int8 scores, so its fp32 row uses int8's thresholds).",
        "",
        "Ratios (best thread count of each, same texts, same run of this script):",
        "",
        f"- student int8 ONNX vs torch eager fp32: {ratios['student_int8_vs_torch_b1']:.2f}x at batch 1, "
        f"{ratios['student_int8_vs_torch_b64']:.2f}x at batch 64",
        f"- student int8 ONNX, batch 64 vs batch 1: {ratios['student_int8_b64_vs_b1']:.2f}x",
        *(
            [
                "- MiniLM int8 ONNX vs torch eager fp32: "
                f"{ratios['minilm_int8_vs_torch_b1']:.2f}x at batch 1, "
                f"{ratios['minilm_int8_vs_torch_b64']:.2f}x at batch 64"
            ]
            if "minilm_int8_vs_torch_b1" in ratios
            else []
        ),
        f"- tfidf_xgboost, this path vs scikit-learn's transforms and XGBoost's predict_proba (the same "
        f"scores): {ratios['tfidf_xgboost_vs_calls_b1']:.2f}x at batch 1, "
        f"{ratios['tfidf_xgboost_vs_calls_b64']:.2f}x at batch 64",
        f"- student int8 vs fp32 ONNX: decisions differ on {results['student_int8_holdout_flip_rate']:.2%} "
        f"of these holdout texts (at the int8 run's thresholds)",
        f"- `python -m toxmod.predict` of {PREDICT_TEXTS:,} texts from a file with the int8 student: "
        f"{results['predict_10k_seconds']:.1f} s end to end (process start included)",
        "",
        "Targets: "
        + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in results["targets"].items()),
        "",
        "Export parity on valid (from each export run's metrics):",
        "",
        "| export | fp32 max abs diff | int8 max abs diff | int8 flip rate | fp32 MB | int8 MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in results["export_metrics"].items():
        lines.append(
            f"| {name} | {m['export/fp32_max_abs_diff']:.2e} | {m['export/int8_max_abs_diff']:.2e} | "
            f"{m['export/int8_flip_rate']:.2%} | {m['export/fp32_size_mb']:.2f} | "
            f"{m['export/int8_size_mb']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = arguments(__doc__, "serving", markdown=DOCS / "benchmarks_serving.md")
    for model in (*CLASSICAL, *NEURAL):
        parser.add_argument(f"--{model.replace('_', '-')}", type=Path, help=f"a janitr {model} run")
    parser.add_argument("--student-onnx", type=Path, help="the student's export run (default: exported here)")
    parser.add_argument("--minilm-onnx", action="store_true", help="also export MiniLM and score ONNX")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "toxmod-serving")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument(
        "--only",
        default="",
        help="re-measure only rows starting with these prefixes (comma-separated, e.g. student/onnx); "
        "the other rows are kept from the --output file",
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.format, int(args.threads), args.texts_file)))
        return
    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    runs = {model: getattr(args, model) or trained(model, workdir) for model in (*CLASSICAL, *NEURAL)}
    onnx = ("student", "minilm") if args.minilm_onnx else ("student",)
    given = {"student": args.student_onnx} if args.student_onnx else {}
    exports = {name: given.get(name) or exported(runs[name], name, workdir) for name in onnx}
    texts = holdout_texts(runs["student"], TEXTS)
    texts_file = workdir / "texts.json"
    texts_file.write_text(json.dumps(texts))

    variants: dict[str, tuple[Path, str | None]] = {f"{m}/native": (runs[m], None) for m in CLASSICAL}
    variants["tfidf_xgboost/sklearn-xgboost-calls"] = (runs["tfidf_xgboost"], "reference")
    for name in NEURAL:
        variants[f"{name}/torch-fp32"] = (runs[name], None)
        if name in exports:
            variants[f"{name}/onnx-fp32"] = (exports[name], "fp32")
            variants[f"{name}/onnx-int8"] = (exports[name], "int8")
    thread_counts = [int(t) for t in args.threads.split(",")]
    rows: dict[str, dict[int, dict]] = {}
    only = [prefix for prefix in args.only.split(",") if prefix]
    previous_file = args.output
    previous = json.loads(previous_file.read_text())["rows"] if only and previous_file.is_file() else {}
    for name, (run_dir, onnx_format) in variants.items():
        if only and not any(name.startswith(prefix) for prefix in only) and name in previous:
            rows[name] = {int(t): r for t, r in previous[name].items()}
            continue
        rows[name] = {}
        for threads in thread_counts:
            rows[name][threads] = measure_in_process(run_dir, onnx_format, threads, texts_file)
            r = rows[name][threads]
            print(
                f"{name:24s} threads={threads} b1 {r['b1_texts_per_s']:7.0f}/s p50 {r['b1_p50_ms']:6.2f} ms "
                f"p95 {r['b1_p95_ms']:6.2f} ms b64 {r['b64_texts_per_s']:7.0f}/s size {r['size_mb']:6.2f} MB "
                f"rss {r['peak_rss_mb']:5.0f} MB",
                flush=True,
            )

    results: dict[str, Any] = {
        **provenance("serving.py"),
        "texts": len(texts),
        "remeasured": only or ["all rows"],
        "rows": rows,
        "runs": {name: str(run_dir) for name, (run_dir, _) in variants.items()},
    }
    for name in variants:  # best thread count of each, for the targets
        results[name] = {key: best(rows, name, key) for key in ("b1_texts_per_s", "b64_texts_per_s")}
        results[name]["size_mb"] = next(iter(rows[name].values()))["size_mb"]
    results["ratios"] = {
        f"{name}_int8_vs_torch_{b}": results[f"{name}/onnx-int8"][f"{b}_texts_per_s"]
        / results[f"{name}/torch-fp32"][f"{b}_texts_per_s"]
        for name in exports
        for b in ("b1", "b64")
    }
    results["ratios"]["student_int8_b64_vs_b1"] = (
        results["student/onnx-int8"]["b64_texts_per_s"] / results["student/onnx-int8"]["b1_texts_per_s"]
    )
    # the reference path scores exactly as the native one: its quality is the native row's
    by_scores: dict[tuple[Path, str | None], dict[str, Any]] = {}
    results["quality"] = {}
    for name, (run_dir, onnx_format) in variants.items():
        key = (run_dir, None if onnx_format == "reference" else onnx_format)
        if key not in by_scores:
            by_scores[key] = quality(run_dir, key[1])
        results["quality"][name] = by_scores[key]
    for key in ("primary", "holdout_rows", "target_fpr"):
        results[key] = results["quality"]["student/torch-fp32"][key]
    for b in ("b1", "b64"):
        results["ratios"][f"tfidf_xgboost_vs_calls_{b}"] = (
            results["tfidf_xgboost/native"][f"{b}_texts_per_s"]
            / results["tfidf_xgboost/sklearn-xgboost-calls"][f"{b}_texts_per_s"]
        )
    results["student_int8_holdout_flip_rate"] = flip_rate_vs_fp32(exports["student"], texts)
    results["predict_10k_seconds"] = predict_10k(exports["student"], texts, workdir)
    results["export_metrics"] = {}
    for name, path in exports.items():
        metrics = json.loads((path / "metrics.json").read_text())
        results["export_metrics"][name] = {k: v for k, v in metrics.items() if k.startswith("export/")}
    results["targets"] = {name: bool(check(results)) for name, check in TARGETS.items()}
    markdown = report(results, results["command"])
    write_results(results, args.output, markdown, args.markdown)
    print(markdown)


if __name__ == "__main__":
    main()
