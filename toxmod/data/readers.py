"""Reading tabular text data: CSV, TSV and JSONL, optionally gzipped, chosen by file extension."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd

from toxmod.errors import DataError
from toxmod.limits import LimitedReader, LimitError, current

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def table_format(path: Path) -> str:
    """'csv', 'tsv' or 'jsonl' from the file name (``.gz`` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    formats = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
    if suffix not in formats:
        raise DataError(
            f"data file {path}: unsupported extension {suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)} (optionally .gz)"
        )
    return formats[suffix]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a data file as strings (empty cells stay empty strings, never NaN)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist (set data.path, or TOXMOD_DATASETS for shared data)"
        )
    fmt = table_format(path)
    if fmt != "jsonl":
        check_header(path, "\t" if fmt == "tsv" else ",")
    try:
        with open_limited(path) as handle:
            if fmt == "jsonl":
                text = codecs.getreader("utf-8")(handle)  # type: ignore[arg-type]  # pandas reads text
                frame = pd.read_json(text, lines=True, dtype=False)
            else:
                separator = "\t" if fmt == "tsv" else ","
                frame = pd.read_csv(handle, sep=separator, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"data file {path}: cannot be read as {fmt}: {first_line}") from error
    if frame.empty:
        raise DataError(f"data file {path} has no rows")
    return frame


def open_limited(path: str | Path) -> LimitedReader:
    """A local file opened for reading bytes (decompressed for ``.gz``) within ``limits``."""
    name = str(path)
    return LimitedReader(open(Path(name).expanduser(), "rb"), name, gzipped=name.endswith(".gz"))


def check_header(path: str | Path, separator: str, stream: LimitedReader | None = None) -> list[str]:
    """A table file's header: its columns, at most ``limits.columns`` (a file of a million columns
    would take gigabytes to parse); read from ``stream`` when given (and consumed), else the file."""
    with stream or open_limited(path) as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    columns = next(csv.reader(io.StringIO(first), delimiter=separator), [])
    limit = current().columns
    if len(columns) > limit:
        raise LimitError(
            f"data file {path}: {len(columns):,} columns, over limits.columns={limit:,}; "
            "raise it if the file really has that many"
        )
    return columns
