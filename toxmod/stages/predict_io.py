"""Where ``toxmod.predict`` reads texts and writes records: stdin, text files, CSV / TSV / JSONL
tables (optionally gzipped) and Parquet, local or anything ``pyarrow.fs`` opens (``s3://``, ...).

Every input is read in chunks (Parquet row batches, pandas chunks, lines), and every output written
batch by batch, so memory does not grow with the file. A file output is written beside its name and
renamed when complete: a stopped run never leaves an output that looks whole.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from toxmod.data.readers import check_header, table_format
from toxmod.data.schemes import LabelScheme, LevelsScheme
from toxmod.errors import ConfigError, DataError
from toxmod.limits import LimitedReader
from toxmod.progress import console

STDIN = "-"
PARQUET = ".parquet"
# (id, text, columns passed through): one input row
Row = tuple[Any, Any, dict[str, Any]]


@dataclass(frozen=True)
class Source:
    """An input: ``rows`` streams ``(id, text, kept columns)``; ``total`` is the row count when cheap."""

    rows: Iterator[Row]
    total: int | None


@dataclass(frozen=True)
class Columns:
    """Which columns of a table input are read: the text, the id (else the row number) and those
    passed through to each record."""

    text: str = "text"
    id: str = "id"
    keep: Sequence[str] = field(default_factory=tuple)


def is_uri(name: str) -> bool:
    return "://" in name


def open_input(name: str) -> BinaryIO:
    """A local file, or a ``pyarrow.fs`` URI, opened for reading bytes."""
    if is_uri(name):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(name)
        return filesystem.open_input_stream(path)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"input={name}: no such file (a .txt, .csv, .tsv, .jsonl or .parquet, or - for stdin)"
        )
    return path.open("rb")


def read_source(name: str, columns: Columns, chunk_size: int) -> Source:
    """The rows of ``name`` (``-``: stdin, one text per line), chunk by chunk."""
    if name == STDIN:
        return Source(_numbered(utf8_lines(LimitedReader(sys.stdin.buffer, "stdin"), "stdin")), None)
    if name.endswith(PARQUET):
        return _parquet_rows(name, columns, chunk_size)
    lines = check_utf8(name)  # before any record is written (and pandas' errors do not say where)
    if name.endswith((".txt", ".txt.gz")):
        return Source(_numbered(utf8_lines(_opened(name), name)), lines)
    return Source(_table_rows(name, columns, chunk_size), lines if "jsonl" in name else None)


def _opened(name: str) -> LimitedReader:
    """The input's bytes (decompressed for ``.gz``), read within ``limits``."""
    return LimitedReader(open_input(name), name, gzipped=name.endswith(".gz"))


def _numbered(lines: Iterable[str]) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        yield number, line.rstrip("\r\n"), {}


def _parquet_rows(name: str, columns: Columns, chunk_size: int) -> Source:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(open_input(name))
    present = set(table.schema_arrow.names)
    _check_columns(name, columns, present)
    text_type = table.schema_arrow.field(columns.text).type
    if not _is_text(text_type):
        raise DataError(f"{name}: column {columns.text!r} holds {text_type}, not text (predict.text_column)")
    wanted = [columns.text, *([columns.id] if columns.id in present else []), *columns.keep]

    def rows() -> Iterator[Row]:
        number = 0
        for batch in table.iter_batches(batch_size=chunk_size, columns=list(dict.fromkeys(wanted))):
            values = batch.to_pydict()
            texts = values[columns.text]
            ids = values.get(columns.id) or range(number + 1, number + len(texts) + 1)
            for i, (identifier, text) in enumerate(zip(ids, texts)):
                yield identifier, text, {k: values[k][i] for k in columns.keep}
            number += len(texts)

    return Source(rows(), table.metadata.num_rows)


def _table_rows(name: str, columns: Columns, chunk_size: int) -> Iterator[Row]:
    import pandas as pd

    fmt = table_format(Path(name))
    separator = "\t" if fmt == "tsv" else ","
    if fmt != "jsonl":  # a header of a million columns is refused before pandas parses a row
        check_header(name, separator, _opened(name))
    wanted = {columns.text, columns.id, *columns.keep}
    with _opened(name) as handle:
        try:
            if fmt == "jsonl":
                text = codecs.getreader("utf-8")(handle)  # type: ignore[arg-type]  # pandas reads text
                chunks = pd.read_json(text, lines=True, dtype=False, chunksize=chunk_size)
            else:
                chunks = pd.read_csv(
                    handle,
                    sep=separator,
                    dtype=str,
                    keep_default_na=False,
                    chunksize=chunk_size,
                    usecols=lambda column: column in wanted,  # only these are parsed
                )
            number = 0
            for frame in chunks:
                _check_columns(name, columns, set(frame.columns))
                texts = frame[columns.text].tolist()
                ids = (
                    frame[columns.id].tolist()
                    if columns.id in frame.columns
                    else range(number + 1, number + len(frame) + 1)
                )
                kept = {k: frame[k].tolist() for k in columns.keep}
                for i, (identifier, text) in enumerate(zip(ids, texts)):
                    yield identifier, text, {k: kept[k][i] for k in columns.keep}
                number += len(frame)
        except (ValueError, pd.errors.ParserError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DataError(f"{name}: cannot be read as {fmt}: {first}") from None


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _check_columns(name: str, columns: Columns, present: set[str]) -> None:
    if columns.text not in present:
        raise DataError(f"{name}: no column {columns.text!r} (set predict.text_column)")
    missing = [k for k in columns.keep if k not in present]
    if missing:
        raise DataError(f"{name}: no column {missing[0]!r} (predict.keep_columns)")


def utf8_lines(stream: Iterable[bytes], name: str) -> Iterator[str]:
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


def check_utf8(name: str, chunk_size: int = 1 << 20) -> int:
    """The whole input (decompressed, for ``.gz``) is UTF-8, else a one-line DataError naming it and
    the byte offset of the first invalid byte; returns its number of newlines (the same pass)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    with _opened(name) as handle:
        while True:
            chunk = handle.read(chunk_size)
            pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                at = offset - pending + error.start
                raise DataError(f"{name}: invalid UTF-8 at byte {at}: {error.reason}") from None
            if not chunk:
                return newlines
            offset += len(chunk)
            newlines += chunk.count(b"\n")


class Sink(Protocol):
    """Where records go, a batch at a time."""

    def write(self, records: Sequence[dict[str, Any]]) -> None: ...


class JsonLines:
    """One JSON object per line."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()


class ParquetRecords:
    """Records as Parquet rows, one row group per batch: ``id``, the kept columns, ``scores.<output>``,
    ``decisions.<decision>``, ``level`` (level schemes) and ``error``."""

    def __init__(self, stream: Any, scored: Sequence[str]) -> None:
        self.stream, self.scored = stream, list(scored)
        self.writer: Any = None

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [flat_record(record) for record in records]
        if self.writer is None:
            given = [name for name in rows[0] if name not in self.scored]  # id and the kept columns
            schema = record_schema(pa.Table.from_pylist(rows).select(given).schema, self.scored)
            self.writer = pq.ParquetWriter(self.stream, schema)
        schema = self.writer.schema
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise DataError(f"predict: a column changed type between batches ({error})") from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def scored_columns(scheme: LabelScheme) -> list[str]:
    """The columns every record has beside its id and kept columns, in order."""
    levels = ["level"] if isinstance(scheme, LevelsScheme) else []
    return [
        *(f"scores.{name}" for name in scheme.output_names),
        *(f"decisions.{name}" for name in scheme.decision_names),
        *levels,
        "error",
    ]


def record_schema(given: Any, scored: Sequence[str]) -> Any:
    """The output's Arrow schema: the id and kept columns as read (``given``), then ``scored``."""
    import pyarrow as pa

    kinds = {"scores": pa.float64(), "decisions": pa.bool_()}
    fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in given]
    fields += [pa.field(name, kinds.get(name.split(".", 1)[0], pa.string())) for name in scored]
    return pa.schema(fields)


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record's nested scores and decisions as ``scores.<name>`` / ``decisions.<name>`` columns."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": inner for name, inner in value.items()})
        else:
            flat[key] = value
    flat.setdefault("error", None)
    return flat


@contextlib.contextmanager
def open_sink(target: str, scored: Sequence[str]) -> Iterator[Sink]:
    """Records into ``target``: stdout (``-``, JSON lines), a ``.parquet`` file (``scored``: its
    columns beside the id and kept ones) or a JSON-lines file; a file is written beside its name
    (``.partial``) and renamed when complete."""
    if target == STDIN:
        previous = console.file
        console.file = sys.stderr  # nothing but records on stdout
        try:
            yield JsonLines(sys.stdout)
        finally:
            console.file = previous
        return
    if is_uri(target):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(target)
        partial = f"{path}.partial"
        try:
            with filesystem.open_output_stream(partial) as stream:
                sink = (
                    ParquetRecords(stream, scored) if target.endswith(PARQUET) else JsonLines(_Text(stream))
                )
                yield sink
                if isinstance(sink, ParquetRecords):
                    sink.close()
        except BaseException:
            filesystem.delete_file(partial)
            raise
        filesystem.move(partial, path)
        return
    final = Path(target).expanduser()
    final.parent.mkdir(parents=True, exist_ok=True)
    partial_path = final.with_name(final.name + ".partial")
    try:
        if target.endswith(PARQUET):
            with partial_path.open("wb") as handle:
                records = ParquetRecords(handle, scored)
                yield records
                records.close()
        else:
            with partial_path.open("w", encoding="utf-8") as text:
                yield JsonLines(text)
    except BaseException:
        partial_path.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    partial_path.replace(final)


class _Text:
    """A text view of a binary pyarrow stream (JSON lines to a URI)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(text.encode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()
