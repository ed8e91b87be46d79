"""Scoring many texts with ``toxmod.predict``: Parquet in, Parquet out, in chunks, with peak memory.

    python benchmarks/scale.py                               # 200k and 1M texts, the default model
    python benchmarks/scale.py --sizes 200000 --run <run dir>  # another finished run (e.g. an int8 export)

Texts are drawn from the janitr texts with a random word dropped or repeated (so they are not the
same strings), written to ``<tmp>/texts-<n>.parquet``; each size is scored by a fresh
``python -m toxmod.predict run=<run> input=... output=...parquet`` process. The table gives wall time
(load included), texts/s and the peak resident memory of the predict process and everything it
starts (Ray's processes too), for the local engine and ``engine=ray`` (Ray Data, 2 actors, sizes up
to ``--ray-max``); ``benchmarks/results/scale.json`` holds the numbers and the machine.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import arguments, provenance, write_results

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


def peak_tree_rss(process: subprocess.Popen[str]) -> float:
    """Wait for ``process``; the peak (sampled every 0.2 s) of the summed resident memory of it and
    every process below it (Ray's raylet and workers included), in MiB."""
    import psutil

    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            total = 0
            for member in tree:
                with contextlib.suppress(psutil.NoSuchProcess):  # it ended between listing and reading
                    total += member.memory_info().rss
            peak = max(peak, total)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    return peak / 2**20


def score(run: Path, source: Path, output: Path, engine: str) -> dict[str, float]:
    """One predict process: wall seconds (load included) and the peak memory of its process tree."""
    command = [sys.executable, "-m", "toxmod.predict", f"run={run}", f"input={source}", f"output={output}"]
    command += ["tracking=none", f"engine={engine}"]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = peak_tree_rss(process)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(process.stderr.read()[-2000:] if process.stderr else "predict failed")
    return {"seconds": seconds, "peak_rss_mib": peak}


def main() -> None:
    parser = arguments(__doc__, "scale")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--run", type=Path, help="a finished run (default: the default model, trained here)")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], help="ray: Ray Data, 2 actors")
    parser.add_argument("--ray-max", type=int, default=200_000, help="the largest size run with engine=ray")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="toxmod-scale-") as tmp:
        work = Path(tmp)
        run = args.run or default_run(work)
        for n in sorted(args.sizes):
            source = texts_file(work / f"texts-{n}.parquet", n)
            for engine in args.engines:
                if engine == "ray" and n > args.ray_max:
                    continue
                output = work / f"scored-{n}-{engine}.parquet"
                measured = score(run, source, output, engine)
                import pyarrow.dataset as ds

                written = ds.dataset(output, format="parquet").count_rows()
                rate = n / measured["seconds"]
                rows.append(
                    {"engine": engine, "texts": n, "written": written, **measured, "texts_per_second": rate}
                )
                print(
                    f"{engine:5s} {n:>9,d} texts  {measured['seconds']:8.1f} s  {rate:8.0f} texts/s  "
                    f"peak RSS {measured['peak_rss_mib']:7.0f} MiB",
                    flush=True,
                )
            source.unlink()
    model = "default (tfidf_xgboost)" if args.run is None else args.run.name
    write_results({**provenance("scale.py"), "model": model, "rows": rows}, args.output)


if __name__ == "__main__":
    main()
