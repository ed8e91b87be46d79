"""Where an ONNX student's scoring time goes, at batch 1 and batch 64, and what each setting changes.

    python benchmarks/student_speed.py --run outputs/export/<an int8 export run>

Scores the same janitr texts (the first ``--texts`` of the data file) through the export's own model
folder, one call per batch of ``1`` and of ``64`` texts, and splits each call into tokenization,
padding, the ONNX Runtime session and post-processing (logits -> probabilities). Variants, side by
side in one process:

- ``as shipped``: the scorer's own path (``OnnxScorer.predict_scores``);
- the breakdown of that path with the tokenizer, padding and session timed apart;
- ``pad to longest`` vs ``buckets of 16``: one padded batch of 64, or the call's texts sorted by
  length and run in sub-batches of 16 (less padding);
- ORT threads 1 vs 2;
- per call: the session time of one text alone vs per text in a batch of 16 equal-length texts, at
  lengths 8-128 tokens, and the fit ``ms = fixed + per_token * tokens`` of the text alone (how much a
  batch can save at all: a text of tens of tokens already fills each layer's matrices with rows).

Prints a table of texts/s and ms per text per part; writes ``benchmarks/results/student_speed.json``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from harness import arguments, provenance, write_results

ROOT = Path(__file__).resolve().parents[1]


def texts_from(data: Path, n: int) -> list[str]:
    frame = pd.read_csv(data, usecols=["text"], dtype=str, keep_default_na=False)
    return frame["text"].head(n).tolist()


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def breakdown(scorer: Any, texts: list[str], batch: int, bucket: int | None) -> dict[str, float]:
    """Seconds per part over all calls of ``batch`` texts (``bucket``: sub-batches of that many)."""
    from toxmod.models.temperature import link_for
    from toxmod.models.token_batches import pad_batch

    session, tokenizer = scorer.session(scorer.score_with), scorer.tokenizer
    pad_id = tokenizer.pad_token_id or 0
    parts = {"tokenize": 0.0, "pad": 0.0, "session": 0.0, "post": 0.0}
    for start in range(0, len(texts), batch):
        call = texts[start : start + batch]
        encoded, seconds = timed(
            lambda c: tokenizer(c, truncation=True, max_length=scorer.max_length)["input_ids"], call
        )
        parts["tokenize"] += seconds
        order = np.argsort([len(ids) for ids in encoded], kind="stable") if bucket else np.arange(len(call))
        size = bucket or len(call)
        for first in range(0, len(call), size):
            rows = order[first : first + size]
            (ids, mask), seconds = timed(pad_batch, [encoded[i] for i in rows], pad_id)
            parts["pad"] += seconds
            (logits,), seconds = timed(session.run, ["logits"], {"input_ids": ids, "attention_mask": mask})
            parts["session"] += seconds
            _, seconds = timed(link_for(scorer.scheme).to_scores, logits.astype(np.float32))
            parts["post"] += seconds
    return parts


def per_text_session_ms(scorer: Any, length: int, rows: int, repeats: int = 30) -> float:
    """Median session time per text for ``rows`` texts of ``length`` tokens each (no padding)."""
    session = scorer.session(scorer.score_with)
    ids = np.random.default_rng(0).integers(5, 1000, size=(rows, length)).astype(np.int64)
    mask = np.ones_like(ids)
    session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
    times = [
        timed(session.run, ["logits"], {"input_ids": ids, "attention_mask": mask})[1] for _ in range(repeats)
    ]
    return 1000 * statistics.median(times) / rows


def per_call_cost(scorer: Any, mean_tokens: float) -> dict[str, Any]:
    """What one text costs alone vs inside a batch of 16 equal-length texts, by length, and the fit
    ``ms = fixed + per_token * tokens`` at batch 1: the ceiling of what batching can gain when every
    text already brings tens of tokens (each layer's matrices have that many rows at batch 1)."""
    lengths = [8, 16, 32, 48, 64, 96, 128]
    alone = [per_text_session_ms(scorer, n, 1) for n in lengths]
    batched = [per_text_session_ms(scorer, n, 16) for n in lengths]
    per_token, fixed = np.polyfit(lengths, alone, 1)
    at_mean = fixed + per_token * mean_tokens
    batched_at_mean = float(np.interp(mean_tokens, lengths, batched))
    return {
        "lengths": lengths,
        "alone_ms": alone,
        "batch16_ms_per_text": batched,
        "fixed_ms": float(fixed),
        "per_token_ms": float(per_token),
        "mean_tokens": mean_tokens,
        "ratio_at_mean_tokens": at_mean / batched_at_mean,
    }


def score_all(scorer: Any, texts: list[str], batch: int) -> None:
    """The scorer's own path, one call per ``batch`` texts."""
    for start in range(0, len(texts), batch):
        scorer.predict_scores(texts[start : start + batch])


def main() -> None:
    parser = arguments(__doc__, "student_speed")
    parser.add_argument("--run", type=Path, required=True, help="an ONNX export run (int8 student)")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from toxmod.hardware import HardwareSettings
    from toxmod.models import load_scorer
    from toxmod.models.capabilities import place
    from toxmod.paths import datasets_root

    texts = texts_from(datasets_root() / "janitr_crypto_scam" / "janitr.csv.gz", args.texts)
    scorer = load_scorer(args.run / "model")
    rows = []
    for threads in (1, 2):
        place(scorer, HardwareSettings("cpu", 1, "32-true", threads, 0))
        scorer.predict_scores(texts[:64])  # warm the session
        for batch in (1, 64):
            for bucket in (None,) if batch == 1 else (None, 16):
                runs = [breakdown(scorer, texts, batch, bucket) for _ in range(args.repeats)]
                parts = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                total = sum(parts.values())
                shipped = [timed(score_all, scorer, texts, batch)[1] for _ in range(args.repeats)]
                rows.append(
                    {
                        "threads": threads,
                        "batch": batch,
                        "padding": "pad to longest" if bucket is None else f"buckets of {bucket}",
                        "texts_per_second": len(texts) / total,
                        "shipped_texts_per_second": len(texts) / statistics.median(shipped),
                        **{f"{k}_ms_per_text": 1000 * v / len(texts) for k, v in parts.items()},
                    }
                )
    lengths = [
        len(ids)
        for ids in scorer.tokenizer(texts, truncation=True, max_length=scorer.max_length)["input_ids"]
    ]
    costs = {}
    for threads in (1, 2):
        place(scorer, HardwareSettings("cpu", 1, "32-true", threads, 0))
        costs[threads] = per_call_cost(scorer, float(np.mean(lengths)))
        cost = costs[threads]
        print(
            f"threads {threads}: one text alone costs {cost['fixed_ms']:.3f} ms + "
            f"{cost['per_token_ms'] * 1000:.1f} us per token; at the mean {cost['mean_tokens']:.0f} tokens, "
            f"alone / in a batch of 16 = {cost['ratio_at_mean_tokens']:.2f}x"
        )
        print("  tokens " + " ".join(f"{n:7d}" for n in cost["lengths"]))
        print("  alone  " + " ".join(f"{v:7.3f}" for v in cost["alone_ms"]))
        print("  b16    " + " ".join(f"{v:7.3f}" for v in cost["batch16_ms_per_text"]))
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    record = {**provenance("student_speed.py"), "texts": len(texts), "run": args.run.name, "rows": rows}
    write_results({**record, "per_call": costs}, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
