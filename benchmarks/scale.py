"""Scoring many texts with ``toxmod.predict``: Parquet in, Parquet out, in chunks, with peak memory.

    python benchmarks/scale.py                               # 200k and 1M texts, the default model
    python benchmarks/scale.py --sizes 200000 --run <run dir>  # another finished run (e.g. an int8 export)

Texts are drawn from the janitr texts with a random word dropped or repeated (so they are not the
same strings), written to ``<tmp>/texts-<n>.parquet``; each size is scored by a fresh
``python -m toxmod.predict run=<run> input=... output=...parquet`` process. The table gives wall time
(load included), texts/s and the process's peak resident memory; ``benchmarks/results/scale.json``
holds the numbers and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def texts_file(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` texts drawn from janitr, perturbed, as Parquet (written in slices: bounded memory here too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from toxmod.data.readers import read_table
    from toxmod.paths import datasets_root

    pool = read_table(datasets_root() / "janitr_crypto_scam" / "janitr.csv.gz")["text"].tolist()
    rng = np.random.default_rng(seed)
    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, 100_000):
            count = min(100_000, n - start)
            picked = rng.integers(0, len(pool), count)
            texts = []
            for i in picked:
                words = pool[i].split() or ["empty"]
                j = int(rng.integers(0, len(words)))
                texts.append(
                    " ".join(words[:j] + words[j + 1 :] if rng.random() < 0.5 else words[: j + 1] + words[j:])
                )
            writer.write_table(
                pa.table({"id": np.arange(start, start + count), "text": texts}, schema=schema)
            )
    return path


def default_run(work: Path) -> Path:
    """The default model trained once (tracking off) into ``work``."""
    run = work / "default-run"
    if not (run / "holdout_eval.json").is_file():
        command = [
            sys.executable,
            "-m",
            "toxmod.train",
            "tracking=none",
            f"hydra.run.dir={run}",
            "plots=false",
        ]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return run


# A process whose one child is the command: its children's peak RSS is the command's alone.
MEASURE = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(done.returncode)"
)


def score(run: Path, source: Path, output: Path, threads: int | None) -> dict[str, float]:
    """One predict process: wall seconds and its peak resident memory (MiB)."""
    command = [sys.executable, "-m", "toxmod.predict", f"run={run}", f"input={source}", f"output={output}"]
    command += ["tracking=none", *([f"hardware.threads={threads}"] if threads else [])]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return {"seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--run", type=Path, help="a finished run (default: the default model, trained here)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="toxmod-scale-") as tmp:
        work = Path(tmp)
        run = args.run or default_run(work)
        for n in sorted(args.sizes):
            source = texts_file(work / f"texts-{n}.parquet", n)
            measured = score(run, source, work / f"scored-{n}.parquet", args.threads)
            import pyarrow.parquet as pq

            written = pq.ParquetFile(work / f"scored-{n}.parquet").metadata.num_rows
            rows.append(
                {"texts": n, "written": written, **measured, "texts_per_second": n / measured["seconds"]}
            )
            print(
                f"{n:>9,d} texts  {measured['seconds']:8.1f} s  {n / measured['seconds']:8.0f} texts/s  "
                f"peak RSS {measured['peak_rss_mib']:7.0f} MiB",
                flush=True,
            )
    model = "default (tfidf_xgboost)" if args.run is None else args.run.name
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"model": model, "machine": machine, "engine": "local", "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
