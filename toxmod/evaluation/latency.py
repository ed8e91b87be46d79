"""Latency and throughput of any Scorer, measured through the scoring interface only."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from toxmod.models.base import Scorer, batched


@dataclass(frozen=True)
class Throughput:
    """Median over repeats of one pass over the texts in batches of ``batch_size``."""

    batch_size: int
    n_texts: int
    repeats: int
    median_texts_per_second: float
    median_batch_ms: float
    mean_batch_ms: float = float("nan")
    p95_batch_ms: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def measure_throughput(
    scorer: Scorer, texts: Sequence[str], batch_size: int, repeats: int = 5, warmup: int = 1
) -> Throughput:
    """Score ``texts`` in batches ``repeats`` times (after ``warmup`` passes); report medians."""
    batches = batched(list(texts), batch_size)
    pass_seconds, batch_ms = [], []
    for attempt in range(warmup + repeats):
        start = time.perf_counter()
        timings = []
        for batch in batches:
            batch_start = time.perf_counter()
            scorer.predict_scores(batch)
            timings.append((time.perf_counter() - batch_start) * 1000)
        if attempt >= warmup:
            pass_seconds.append(time.perf_counter() - start)
            batch_ms.extend(timings)
    median_pass = statistics.median(pass_seconds)
    return Throughput(
        batch_size,
        len(texts),
        repeats,
        len(texts) / median_pass,
        statistics.median(batch_ms),
        statistics.fmean(batch_ms),
        float(np.percentile(batch_ms, 95)),
    )
