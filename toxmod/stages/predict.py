"""Score new texts with any finished run: ``python -m toxmod.predict`` and ``toxmod.load``.

A run is opened from its model folder and thresholds alone -- no dataset is read, so a run directory
copied to another machine predicts there. Each text gets one JSON record: its id (or line number),
every output's probability, every decision at the run's calib thresholds and, for level schemes,
the predicted level. A blank text or one over ``predict.max_chars`` gets a record with an ``error``
instead, and the rest go on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme, LevelsScheme
from toxmod.errors import ConfigError
from toxmod.hardware import HardwareSettings
from toxmod.models import Opening, Scorer
from toxmod.models.capabilities import place
from toxmod.progress import notes_console
from toxmod.runs.opening import default_opening, downloads_dir, locate_run, open_scorer
from toxmod.runs.store import NoStore, RunStore
from toxmod.spec import PredictSpec
from toxmod.stages.predict_io import STDIN, Columns, Row, open_sink, read_source, scored_columns
from toxmod.thresholds import Thresholds


@dataclass
class Predictor:
    """A finished run's model and thresholds: ``predict(texts)`` -> one dict per text."""

    scorer: Scorer
    thresholds: Thresholds
    run_dir: Path
    checkpoint: str | None = None  # step-<n>: a checkpoint the run kept besides its best

    @classmethod
    def open(
        cls,
        ref: str | Path,
        store: RunStore | NoStore | None = None,
        cache_dir: Path | None = None,
        allow_pickle: bool = False,
        hardware: HardwareSettings | None = None,
        opening: Opening | None = None,
        checkpoint: str | int | None = None,
    ) -> Predictor:
        """A run directory or MLflow run id (with ``store``); an unfinished run is refused.

        ``opening``: what only the opener chooses (a server, key variable, weights folder, the
        cache); by default none of them, the user cache and this machine's toxmod folders."""
        opening = opening or default_opening()
        run = locate_run(ref, store or NoStore(), downloads_dir(opening, cache_dir), checkpoint)
        scorer, thresholds = open_scorer(run.model, run.thresholds, allow_pickle, opening)
        if hardware is not None:
            place(scorer, hardware)
        return cls(scorer, thresholds, run.path, run.checkpoint)

    @property
    def scheme(self) -> LabelScheme:
        return self.scorer.label_scheme

    def predict(self, texts: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
        """Scores and decisions for one text (a dict) or several (a list of dicts, in order)."""
        if isinstance(texts, str):
            return self.predict_many([texts])[0]
        return self.predict_many(texts)

    def predict_many(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per text, in order."""
        texts = list(texts)
        return self.records(self.scorer.predict_scores(texts)) if texts else []

    def records(self, scores: np.ndarray) -> list[dict[str, Any]]:
        scheme, cut = self.scheme, self.thresholds.as_array()
        decided = scheme.decision_scores(scores) >= cut[None, :]
        levels = scheme.predict(scores, cut) if isinstance(scheme, LevelsScheme) else None
        out = []
        for i, row in enumerate(scores):
            record: dict[str, Any] = {
                "scores": {name: float(v) for name, v in zip(scheme.output_names, row)},  # exact, unrounded
                "decisions": {name: bool(d) for name, d in zip(scheme.decision_names, decided[i])},
            }
            if levels is not None:
                record["level"] = scheme.output_names[int(levels[i])]
            out.append(record)
        return out


@dataclass(frozen=True)
class PredictSettings:
    """``input``, ``output`` and ``predict.*`` (``PredictSpec``: the YAML's defaults, checked)."""

    input: str
    output: str = STDIN
    options: PredictSpec = field(default_factory=PredictSpec.of)

    @classmethod
    def of(cls, input: str, output: str = STDIN, **options: Any) -> PredictSettings:  # noqa: A002
        """``options``: ``predict.*`` keys; the others take conf/predict.yaml's defaults."""
        return cls(input, output, PredictSpec.of(options))

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def chunk_size(self) -> int:  # texts per scoring call from a file (stdin: batch_size, so a pipe streams)
        return self.options.chunk_size

    @property
    def max_chars(self) -> int:
        return self.options.max_chars

    @property
    def columns(self) -> Columns:
        return Columns(self.options.text_column, self.options.id_column, self.options.keep_columns)


@dataclass(frozen=True)
class PredictSummary:
    scored: int
    reported: int
    seconds: float
    output: str


def predict_file(predictor: Predictor, settings: PredictSettings) -> PredictSummary:
    """Stream ``settings.input`` through the predictor in batches into ``settings.output``.

    Progress shows for file inputs on a terminal, never for pipes.
    """
    if settings.batch_size < 1 or settings.max_chars < 1 or settings.chunk_size < 1:
        raise ConfigError("predict.batch_size, predict.chunk_size and predict.max_chars must be positive")
    source = read_source(settings.input, settings.columns, settings.chunk_size)
    # From a file, larger calls: a model sorts the texts of one call by length before batching them,
    # so texts of similar length share a batch and little is spent on padding.
    size = settings.batch_size if settings.input == STDIN else settings.chunk_size
    start, scored, reported = time.perf_counter(), 0, 0
    with (
        open_sink(settings.output, scored_columns(predictor.scheme)) as sink,
        _progress(source.total) as advance,
    ):
        for batch in _batches(source.rows, size):
            records = batch_records(predictor, batch, settings.max_chars)
            sink.write(records)
            problems = sum("error" in r for r in records)
            scored, reported = scored + len(records) - problems, reported + problems
            advance(len(records))
    return PredictSummary(scored, reported, time.perf_counter() - start, settings.output)


def batch_records(predictor: Predictor, batch: Sequence[Row], max_chars: int) -> list[dict[str, Any]]:
    """One record per row: id, kept columns, then scores and decisions (or the ``error``)."""
    records: list[dict[str, Any]] = []
    good: list[int] = []
    for identifier, text, kept in batch:
        text = "" if text is None else str(text)
        identifier = identifier.item() if isinstance(identifier, np.generic) else identifier
        record = {"id": identifier, **kept}
        if not text.strip():
            record["error"] = "empty text"
        elif len(text) > max_chars:
            record["error"] = f"{len(text)} characters, over predict.max_chars={max_chars}"
        else:
            good.append(len(records))
        records.append(record)
    if good:
        texts = [str(batch[i][1]) for i in good]
        for i, scored in zip(good, predictor.predict_many(texts)):
            records[i].update(scored)
    return records


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _progress(total: int | None) -> Iterator[Any]:
    if total is None or not notes_console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from toxmod.progress import RateColumn

    columns = (TextColumn("predict"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn())
    with Progress(*columns, console=notes_console, transient=True) as bar:
        task = bar.add_task("predict", total=total)
        yield lambda n: bar.advance(task, n)
