"""Score new texts with any finished run: ``python -m toxmod.predict`` and ``toxmod.load``.

A run is opened from its model folder and thresholds alone -- no dataset is read, so a run directory
copied to another machine predicts there. Each text gets one JSON record: its id (or line number),
every output's probability, every decision at the run's calib thresholds and, for level schemes,
the predicted level. A blank text or one over ``predict.max_chars`` gets a record with an ``error``
instead, and the rest go on.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np

from toxmod.data.readers import read_table
from toxmod.data.schemes import LabelScheme, LevelsScheme
from toxmod.errors import ConfigError, DataError
from toxmod.hardware import HardwareSettings
from toxmod.models import Opening, Scorer, load_scorer
from toxmod.models.capabilities import place
from toxmod.progress import console, notes_console
from toxmod.runs.opening import default_opening, downloads_dir, locate_run
from toxmod.runs.record import RunDir
from toxmod.runs.store import NoStore, RunStore
from toxmod.thresholds import Thresholds

STDIN = "-"


@dataclass
class Predictor:
    """A finished run's model and thresholds: ``predict(texts)`` -> one dict per text."""

    scorer: Scorer
    thresholds: Thresholds
    run_dir: Path

    @classmethod
    def open(
        cls,
        ref: str | Path,
        store: RunStore | NoStore | None = None,
        cache_dir: Path | None = None,
        allow_pickle: bool = False,
        hardware: HardwareSettings | None = None,
        opening: Opening | None = None,
    ) -> Predictor:
        """A run directory or MLflow run id (with ``store``); an unfinished run is refused.

        ``opening``: what only the opener chooses (a server, key variable, weights folder, the
        cache); by default none of them, the user cache and this machine's toxmod folders."""
        opening = opening or default_opening()
        run = locate_run(ref, store or NoStore(), downloads_dir(opening, cache_dir))
        scorer = load_scorer(run.model, allow_pickle, opening)
        if hardware is not None:
            place(scorer, hardware)
        return cls(scorer, Thresholds.load(RunDir(run.path).thresholds, scorer.label_scheme), run.path)

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
    input: str
    output: str = STDIN
    batch_size: int = 64
    max_chars: int = 10_000
    text_column: str = "text"
    id_column: str = "id"
    chunk_size: int = 1024  # texts per scoring call from a file (stdin: batch_size, so a pipe streams)


@dataclass(frozen=True)
class PredictSummary:
    scored: int
    reported: int
    seconds: float
    output: str


def read_inputs(settings: PredictSettings) -> tuple[Iterator[tuple[Any, str]], int | None]:
    """``(id, text)`` pairs and their count when known (files; stdin streams, count unknown)."""
    if settings.input == STDIN:
        return _lines(utf8_lines(sys.stdin.buffer, "stdin")), None
    path = Path(settings.input).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"input={settings.input}: no such file (a .txt, .csv, .tsv or .jsonl, or - for stdin)"
        )
    if path.suffix == ".txt":
        lines = decoded(path.read_bytes(), path).splitlines()
        return _lines(lines), len(lines)
    check_utf8(path)  # a table is read by pandas, whose errors do not say where in the file
    frame = read_table(path)
    if settings.text_column not in frame.columns:
        raise DataError(f"{path}: no column {settings.text_column!r} (set predict.text_column)")
    ids = (
        frame[settings.id_column].tolist()
        if settings.id_column in frame.columns
        else range(1, len(frame) + 1)
    )
    return zip(ids, frame[settings.text_column].tolist()), len(frame)


def utf8_lines(stream: BinaryIO, name: str) -> Iterator[str]:
    """Lines of a byte stream decoded as UTF-8; invalid bytes are a one-line DataError naming the byte
    offset (never scored as replacement characters)."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{name}: invalid UTF-8 at byte {offset + error.start} (line {number}): {error.reason}"
            ) from None
        offset += len(raw)


def decoded(data: bytes, where: Path) -> str:
    """``data`` as UTF-8; invalid bytes are a one-line DataError naming ``where`` and the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{where}: invalid UTF-8 at byte {error.start}: {error.reason}") from None


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """The whole file (decompressed, for ``.gz``) is UTF-8, else a one-line DataError naming the file
    and the byte offset of the first invalid byte."""
    import codecs
    import gzip

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                at = offset - pending + error.start
                raise DataError(f"{path}: invalid UTF-8 at byte {at}: {error.reason}") from None
            if not chunk:
                return
            offset += len(chunk)


def _lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r\n")


def predict_file(predictor: Predictor, settings: PredictSettings) -> PredictSummary:
    """Stream ``settings.input`` through the predictor in batches into ``settings.output`` (JSON lines).

    A file output is written beside its name and renamed when complete, so a stopped run never leaves
    an output that looks whole. Progress shows for file inputs on a terminal, never for pipes.
    """
    if settings.batch_size < 1 or settings.max_chars < 1 or settings.chunk_size < 1:
        raise ConfigError("predict.batch_size, predict.chunk_size and predict.max_chars must be positive")
    rows, total = read_inputs(settings)
    # From a file, larger calls: a model sorts the texts of one call by length before batching them,
    # so texts of similar length share a batch and little is spent on padding.
    size = settings.batch_size if total is None else settings.chunk_size
    start, scored, reported = time.perf_counter(), 0, 0
    with _output(settings.output) as sink, _progress(total) as advance:
        for batch in _batches(rows, size):
            records = _batch_records(predictor, batch, settings.max_chars)
            for record in records:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            problems = sum("error" in r for r in records)
            scored, reported = scored + len(records) - problems, reported + problems
            advance(len(records))
    return PredictSummary(scored, reported, time.perf_counter() - start, settings.output)


def _batch_records(
    predictor: Predictor, batch: list[tuple[Any, str]], max_chars: int
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    good: list[int] = []
    for identifier, text in batch:
        text = "" if text is None else str(text)
        identifier = identifier.item() if isinstance(identifier, np.generic) else identifier
        if not text.strip():
            records.append({"id": identifier, "error": "empty text"})
        elif len(text) > max_chars:
            problem = f"{len(text)} characters, over predict.max_chars={max_chars}"
            records.append({"id": identifier, "error": problem})
        else:
            records.append({"id": identifier})
            good.append(len(records) - 1)
    if good:
        texts = [str(batch[i][1]) for i in good]
        for i, scored in zip(good, predictor.predict_many(texts)):
            records[i].update(scored)
    return records


def _batches(rows: Iterator[tuple[Any, str]], size: int) -> Iterator[list[tuple[Any, str]]]:
    batch: list[tuple[Any, str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextlib.contextmanager
def _output(target: str) -> Iterator[TextIO]:
    if target == STDIN:
        previous = console.file
        console.file = sys.stderr  # nothing but records on stdout
        try:
            yield sys.stdout
        finally:
            console.file = previous
        return
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            yield handle
    except BaseException:
        partial.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    partial.replace(path)


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
